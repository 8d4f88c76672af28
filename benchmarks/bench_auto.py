"""AutoDetector against PyOD's detectors at their defaults, same splits, same run.

Cases (all data ship offline):

- ``wine``, ``digits17``, ``digits2``, ``iris``: leave one class out (the protocol of
  examples/ood_novelty.py: the other classes' records shuffled with ``RandomState(0)``,
  70% train, test = the other 30% + every record of the held-out class); AUROC averaged
  over the classes. Digits are passed to arprob as ``uint8`` images (17 levels, or
  binarized at ``x >= 8``), to PyOD as standardised pixel vectors.
- ``cancer``: breast cancer, benign records are normal (70% train), malignant the anomalies.
- ``alarm``: 5,000 training records sampled from the ALARM network (37 categorical
  variables, pgmpy's bundled BIF read with ``ar.read_bif``); test = 1,000 fresh records +
  200 anomalies: 100 with one field changed to another state, 100 with every field taken
  from a different random record (dependencies broken, marginals kept). PyOD sees one-hot.
- ``cancer-missing``: ``cancer`` with 20% of the entries (train and test) missing at
  random; arprob gets the NaNs, PyOD the training means imputed.

PyOD gets each feature standardised with the training part's statistics (one-hot for
categorical columns); arprob gets the raw columns. ``--speed`` adds the fit + score time
table of issue 24 (5,000 x 37 categorical, 150 x 4, 569 x 30, 1,400 binarized 8x8 images)
with PyOD's IForest, KDE and ECOD beside.

    python benchmarks/bench_auto.py                 # every case, then the speed table
    python benchmarks/bench_auto.py --cases wine,alarm --no-speed
    python benchmarks/bench_auto.py --speed-only
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import comma_list  # noqa: E402

import arprob as ar  # noqa: E402
from arprob.ood import AutoDetector, metrics  # noqa: E402

PYOD = ("IForest", "LOF", "KNN", "KDE", "ECOD", "COPOD", "HBOS", "PCA", "OCSVM", "GMM")
CASES = ("wine", "digits17", "digits2", "iris", "cancer", "alarm", "cancer-missing")


def pyod(name: str):
    import importlib

    module = {"IForest": "iforest", "LOF": "lof", "KNN": "knn", "KDE": "kde", "ECOD": "ecod", "COPOD": "copod",
              "HBOS": "hbos", "PCA": "pca", "OCSVM": "ocsvm", "GMM": "gmm"}[name]
    return getattr(importlib.import_module(f"pyod.models.{module}"), name)()


def standardiser(train: np.ndarray):
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return lambda x: (x - mean) / std


def compare(arprob_train, arprob_in, arprob_out, pyod_train, pyod_in, pyod_out) -> dict[str, float]:
    """AUROC of every detector on one split (anomalies positive) and arprob's seconds."""
    row = {}
    t = time.perf_counter()
    det = AutoDetector().fit(arprob_train)
    s_in, s_out = det.decision_function(arprob_in), det.decision_function(arprob_out)
    row["seconds"] = time.perf_counter() - t
    row["arprob"] = metrics.auroc(s_in, s_out)
    row["chosen"] = det.chosen_
    z = standardiser(pyod_train)
    for name in PYOD:
        d = pyod(name).fit(z(pyod_train))
        row[name] = metrics.auroc(d.decision_function(z(pyod_in)), d.decision_function(z(pyod_out)))
    return row


def leave_one_class_out(x_arprob, x_pyod, y) -> list[dict]:
    rows = []
    for c in np.unique(y):
        normal = np.flatnonzero(y != c)
        normal = normal[np.random.RandomState(0).permutation(normal.size)]
        k = round(0.7 * normal.size)
        tr, te_in, te_out = normal[:k], normal[k:], np.flatnonzero(y == c)
        rows.append(compare(x_arprob[tr], x_arprob[te_in], x_arprob[te_out], x_pyod[tr], x_pyod[te_in], x_pyod[te_out]))
    return rows


def case(name: str) -> list[dict]:
    from sklearn import datasets

    if name in ("wine", "iris"):
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        return leave_one_class_out(x, x, y)
    if name.startswith("digits"):
        x, y = datasets.load_digits(return_X_y=True)
        if name == "digits2":
            x = (x >= 8).astype(np.float64)
        images = x.reshape(-1, 8, 8).astype(np.uint8)
        return leave_one_class_out(images, x, y)
    if name.startswith("cancer"):
        x, y = datasets.load_breast_cancer(return_X_y=True)  # 0 = malignant, 1 = benign
        benign = np.flatnonzero(y == 1)
        benign = benign[np.random.RandomState(0).permutation(benign.size)]
        k = round(0.7 * benign.size)
        tr, te_in, te_out = benign[:k], benign[k:], np.flatnonzero(y == 0)
        if name == "cancer":
            return [compare(x[tr], x[te_in], x[te_out], x[tr], x[te_in], x[te_out])]
        holed = np.where(np.random.default_rng(0).random(x.shape) < 0.2, np.nan, x)
        means = np.nanmean(holed[tr], 0)
        imputed = np.where(np.isnan(holed), means, holed)
        return [compare(holed[tr], holed[te_in], holed[te_out], imputed[tr], imputed[te_in], imputed[te_out])]
    if name == "alarm":
        train, test_in, test_out = alarm_records()
        onehot = _onehot(train)
        return [compare(train, test_in, test_out, onehot(train), onehot(test_in), onehot(test_out))]
    raise ValueError(name)


def alarm_model():
    import pgmpy

    source = Path(pgmpy.__file__).parent / "utils" / "example_models" / "alarm.bif.gz"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alarm.bif"
        path.write_bytes(gzip.decompress(source.read_bytes()))
        spec = ar.read_bif(path)
    import jax

    return ar.compile(spec, jax.random.key(0))


def alarm_records(n_train: int = 5000):
    import jax

    model = alarm_model()
    data = model.sample(jax.random.key(1), n_train + 1200)
    names = [v.name for v in model.spec.variables]
    states = {v.name: v.num_values for v in model.spec.variables}
    table = np.stack([np.asarray(data[n]) for n in names], 1)
    rng = np.random.default_rng(2)
    train, test_in, out = table[:n_train], table[n_train : n_train + 1000], table[n_train + 1000 :].copy()
    for r in range(100):  # one field changed to another state
        j = rng.integers(len(names))
        out[r, j] = (out[r, j] + rng.integers(1, states[names[j]])) % states[names[j]]
    for j in range(len(names)):  # fields shuffled across records
        out[100:, j] = rng.permutation(table[:n_train, j])[:100]
    as_dict = lambda t: {n: np.array([f"s{v}" for v in t[:, j]], dtype=object) for j, n in enumerate(names)}  # noqa: E731
    return as_dict(train), as_dict(test_in), as_dict(out)


def _onehot(train: dict):
    states = {k: sorted(set(v)) for k, v in train.items()}

    def encode(d):
        return np.concatenate([(np.asarray(d[k])[:, None] == np.array(s, dtype=object)[None]).astype(float)
                               for k, s in states.items()], 1)

    return encode


def speed() -> list[dict]:
    """Fit + score seconds on the issue's four sizes, arprob at its default time budget."""
    from sklearn import datasets

    x_iris = datasets.load_iris().data
    x_cancer = datasets.load_breast_cancer().data
    digits = (datasets.load_digits().data[:1400] >= 8).astype(np.uint8).reshape(-1, 8, 8)
    alarm, alarm_test, _ = alarm_records()
    onehot = _onehot(alarm)
    cases = [("5,000 x 37 categorical (ALARM)", alarm, alarm_test, onehot(alarm), onehot(alarm_test), 10.0),
             ("150 x 4 numeric (iris)", x_iris, x_iris, x_iris, x_iris, 2.0),
             ("569 x 30 numeric (breast cancer)", x_cancer, x_cancer, x_cancer, x_cancer, 5.0),
             ("1,400 binarized 8x8 images", digits, digits, digits.reshape(1400, -1).astype(float),
              digits.reshape(1400, -1).astype(float), 30.0)]
    rows = []
    for label, train, test, p_train, p_test, target in cases:
        row = {"case": label, "target": target}
        t = time.perf_counter()
        AutoDetector().fit(train).decision_function(test)
        row["arprob"] = time.perf_counter() - t
        for name in ("IForest", "KDE", "ECOD"):
            t = time.perf_counter()
            pyod(name).fit(p_train).decision_function(p_test)
            row[name] = time.perf_counter() - t
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=comma_list(CASES), default=list(CASES), help="comma-separated cases")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed table")
    parser.add_argument("--speed-only", action="store_true", help="only the speed table")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.speed_only:
        args.cases = []
    head = ["case", "AutoDetector", *PYOD, "best PyOD", "arprob s", "chosen (last split)"]
    if args.cases:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    means = []
    for name in args.cases:
        rows = case(name)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("arprob", "seconds", *PYOD)}
        best = max(PYOD, key=lambda k: mean[k])
        means.append((mean["arprob"], mean[best]))
        cells = [f"**{mean['arprob']:.3f}**" if mean["arprob"] >= mean[best] else f"{mean['arprob']:.3f}"]
        cells += [f"{mean[k]:.3f}" for k in PYOD]
        print(f"| {name} | " + " | ".join(cells) + f" | {best} {mean[best]:.3f} | {mean['seconds']:.1f} | "
              f"{rows[-1]['chosen']} |", flush=True)
    if means:
        a, b = np.mean([m[0] for m in means]), np.mean([m[1] for m in means])
        print(f"\nmean over cases: AutoDetector {a:.3f}, best PyOD per case {b:.3f}")
    if not args.no_speed:
        print("\n| fit + score (s) | target | AutoDetector | IForest | KDE | ECOD |\n|---|---|---|---|---|---|")
        for r in speed():
            print(f"| {r['case']} | {r['target']:g} | {r['arprob']:.2f} | {r['IForest']:.2f} | {r['KDE']:.2f} | "
                  f"{r['ECOD']:.2f} |", flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
