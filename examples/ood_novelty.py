"""Novelty detection, leave one class out: arprob likelihoods against PyOD's detectors.

For each class ``c`` of a labelled data set, the other classes are the normal data and ``c``
is the anomaly: the normal records are shuffled (``RandomState(0)``), 70% train the
detectors, and the test set is the other 30% plus every record of class ``c``. The figure is
the AUROC of that test set (anomalies positive), and the mean over the classes.

- **digits** (scikit-learn, 1797 8x8 images, 17 levels; ten runs): arprob fits
  ``Ordinal(17)`` with ``Logistic`` + ``DiscretizedLogisticMixture(5)`` to 80% of the
  training part (early stopping on a tenth of that) and calibrates detectors on the other
  20%. Scores: plain NLL; the complexity correction (``NLL bits - PNG bits``); the
  likelihood ratio against a background model fitted to perturbed images (Ren et al.,
  ``--mu``) and against an independent-pixel table (``LR pixels``: each pixel's own
  17-level histogram, a "local statistics" background in the spirit of Schirrmeister et
  al. 2020); and ``Fisher``: ``-sum log p`` of the rank p-values of NLL, complexity and LR
  pixels (one score that flags what any of the three flags);
- **wine** (scikit-learn, 178 records, 13 real features; three runs): every feature is
  standardised with the training part's mean and standard deviation (for every detector),
  and arprob fits ``Real(13)`` with ``Logistic`` + ``Gaussian`` (mean *and* log-scale of each
  feature linear in the earlier ones) and with ``MADE`` + ``GaussianMixture(3)``. For
  reference (not an arprob detector) the table also shows the closed-form maximum-likelihood
  Gaussian (the Mahalanobis distance), computed with NumPy.

PyOD (``pip install 'arprob[bench]'``) runs IsolationForest, LOF, KNN, KDE, ECOD and COPOD,
with their default settings, on the same splits and the same standardised features (digits:
each pixel standardised with the training part's statistics; constant pixels left as they
are). Without PyOD installed the script reports arprob's columns only.

    python examples/ood_novelty.py            # full tables
    python examples/ood_novelty.py --quick    # smoke run in seconds (meaningless numbers)

Runtime on the shared, loaded 2-core development machine: 17 s wall with ``--quick``
(``/usr/bin/time``; docs/examples.md).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np
import optax

import arprob as ar
from arprob.ood import metrics

PYOD_NAMES = ("IForest", "LOF", "KNN", "KDE", "ECOD", "COPOD")
REFERENCE = "Gaussian MLE (NumPy reference)"
EARLY_STOPPING = {"validation": 0.1, "eval_every": 100, "patience": 10}


def pyod_detectors(seed: int) -> dict:
    """PyOD detectors with default settings, or ``{}`` when PyOD is not installed."""
    try:
        from pyod.models.copod import COPOD
        from pyod.models.ecod import ECOD
        from pyod.models.iforest import IForest
        from pyod.models.kde import KDE
        from pyod.models.knn import KNN
        from pyod.models.lof import LOF
    except ImportError:
        return {}
    return {
        "IForest": lambda: IForest(random_state=seed),
        "LOF": LOF,
        "KNN": KNN,
        "KDE": KDE,
        "ECOD": ECOD,
        "COPOD": COPOD,
    }


def splits(y: np.ndarray, held_out: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, test_normal, test_anomalies)`` indices for one held-out class."""
    normal = np.flatnonzero(y != held_out)
    normal = normal[np.random.RandomState(seed).permutation(normal.size)]
    k = round(0.7 * normal.size)
    return normal[:k], normal[k:], np.flatnonzero(y == held_out)


def standardiser(train: np.ndarray):
    """``z = (x - mean) / std`` with the training part's statistics (std 0 -> 1)."""
    flat = train.reshape(len(train), -1).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return lambda x: (x.reshape(len(x), -1) - mean) / std


def fit_model(spec: ar.Spec, data, args, *, learning_rate: float = 3e-3) -> ar.Model:
    model = ar.compile(spec, jax.random.key(args.seed))
    kwargs = {"optimizer": optax.adam(learning_rate), "num_steps": args.steps, "batch_size": 100, "seed": args.seed,
              "progress": False}
    if not args.quick:
        kwargs.update(EARLY_STOPPING)
    return ar.fit(model, data, **kwargs).model


# --------------------------------------------------------------------------- digits
def digits_spec() -> ar.Spec:
    head = ar.DiscretizedLogisticMixture(5)
    return ar.Spec(variables=(ar.Ordinal("digit", levels=17, shape=(8, 8)),), conditionals={"digit": ar.Logistic(head=head)})


def pixel_table_spec() -> ar.Spec:
    """Every pixel its own 17-level distribution, independent of the others (fitted by counting)."""
    return ar.Spec(
        variables=(ar.Ordinal("digit", levels=17, shape=(8, 8)),), conditionals={"digit": ar.Table(parents=())}
    )


def run_digits(args) -> dict:
    from sklearn.datasets import load_digits

    raw = load_digits()
    x, y = raw.images.astype(np.int64), raw.target
    classes = [1] if args.quick else list(range(10))
    pyod = pyod_detectors(args.seed)
    rows = []
    for c in classes:
        t0 = time.perf_counter()
        train, test_in, test_out = splits(y, c, args.seed)
        x_train, x_in, x_out = x[train], x[test_in], x[test_out]
        k = round(0.8 * len(x_train))  # fit on 80% of the training part, calibrate on the rest
        x_fit, x_cal = {"digit": x_train[:k]}, {"digit": x_train[k:]}
        model = fit_model(digits_spec(), x_fit, args)
        perturbed = ar.ood.fit_background(
            model, x_fit, mu=args.mu, key=jax.random.key(args.seed + 1), optimizer=optax.adam(3e-3),
            num_steps=args.steps, batch_size=100, seed=args.seed, progress=False,
            **({} if args.quick else EARLY_STOPPING),
        ).model
        independent = ar.fit(ar.compile(pixel_table_spec(), jax.random.key(args.seed)), x_fit, progress=False).model
        detectors = {
            "NLL": ar.ood.Detector.fit(model, x_cal),
            "complexity": ar.ood.Detector.fit(model, x_cal, correction="complexity"),
            "LR perturbed": ar.ood.Detector.fit(model, x_cal, correction="likelihood_ratio", background=perturbed),
            "LR pixels": ar.ood.Detector.fit(model, x_cal, correction="likelihood_ratio", background=independent),
        }
        row = {"class": c}
        log_p = {"in": 0.0, "out": 0.0}
        for name, det in detectors.items():
            s_in, s_out = det.score({"digit": x_in}), det.score({"digit": x_out})
            row[name] = metrics.auroc(s_in, s_out)
            if name != "LR perturbed":
                log_p["in"] = log_p["in"] + np.log(det.p_values(scores=s_in))
                log_p["out"] = log_p["out"] + np.log(det.p_values(scores=s_out))
        row["Fisher"] = metrics.auroc(-log_p["in"], -log_p["out"])
        z = standardiser(x_train)
        for name, make in pyod.items():
            det = make().fit(z(x_train))
            row[name] = metrics.auroc(det.decision_function(z(x_in)), det.decision_function(z(x_out)))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return {"data": "digits (17 levels)", "rows": rows}


# --------------------------------------------------------------------------- wine
def run_wine(args) -> dict:
    from sklearn.datasets import load_wine

    raw = load_wine()
    x, y = raw.data.astype(np.float64), raw.target
    classes = [0] if args.quick else [0, 1, 2]
    pyod = pyod_detectors(args.seed)
    specs = {
        "Logistic + Gaussian": ar.Spec(variables=(ar.Real("wine", shape=(13,)),),
                                   conditionals={"wine": ar.Logistic(head=ar.Gaussian())}),
        "MADE + GMM(3)": ar.Spec(variables=(ar.Real("wine", shape=(13,)),),
                                 conditionals={"wine": ar.MADE(hidden=(32,), head=ar.GaussianMixture(3))}),
    }
    if args.quick:
        specs = {k: v for k, v in specs.items() if k == "Logistic + Gaussian"}
    rows = []
    for c in classes:
        t0 = time.perf_counter()
        train, test_in, test_out = splits(y, c, args.seed)
        z = standardiser(x[train])
        z_train, z_in, z_out = z(x[train]), z(x[test_in]), z(x[test_out])
        row = {"class": c}
        for name, spec in specs.items():
            model = fit_model(spec, {"wine": z_train}, args, learning_rate=1e-2)
            row[name] = metrics.auroc(ar.ood.raw_scores(model, {"wine": z_in}), ar.ood.raw_scores(model, {"wine": z_out}))
        precision = np.linalg.inv(np.cov(z_train.T, bias=True))  # the maximum-likelihood Gaussian, in closed form

        def mahalanobis(z, precision=precision):
            return np.einsum("ni,ij,nj->n", z, precision, z)

        row[REFERENCE] = metrics.auroc(mahalanobis(z_in), mahalanobis(z_out))
        for name, make in pyod.items():
            det = make().fit(z_train)
            row[name] = metrics.auroc(det.decision_function(z_in), det.decision_function(z_out))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return {"data": "wine (13 standardised reals)", "rows": rows}


# --------------------------------------------------------------------------- report
def markdown(result: dict) -> str:
    rows = result["rows"]
    names = [k for k in rows[0] if k not in ("class", "seconds")]
    ours = [n for n in names if n not in PYOD_NAMES and n != REFERENCE]
    theirs = [n for n in names if n in PYOD_NAMES]
    means = {n: float(np.mean([r[n] for r in rows])) for n in names}
    mins = {n: float(np.min([r[n] for r in rows])) for n in names}
    lines = [
        f"### {result['data']}: AUROC with one class held out",
        "",
        "| held-out class | " + " | ".join(f"{n}{' (PyOD)' if n in PYOD_NAMES else ''}" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for r in rows:
        best = max(ours + theirs, key=lambda n: r[n])
        lines.append(f"| {r['class']} | " + " | ".join(
            f"**{r[n]:.3f}**" if n == best else f"{r[n]:.3f}" for n in names) + " |")
    lines.append("| **mean** | " + " | ".join(f"{means[n]:.3f}" for n in names) + " |")
    lines.append("| min | " + " | ".join(f"{mins[n]:.3f}" for n in names) + " |")
    best_ours = max(ours, key=lambda n: means[n])
    summary = f"Best arprob detector: {best_ours} (mean {means[best_ours]:.3f}, min {mins[best_ours]:.3f})"
    if theirs:
        best_theirs = max(theirs, key=lambda n: means[n])
        summary += f"; best PyOD detector: {best_theirs} (mean {means[best_theirs]:.3f}, min {mins[best_theirs]:.3f})"
    else:
        summary += "; PyOD is not installed (pip install 'arprob[bench]'), so there is no comparison"
    seconds = sum(r["seconds"] for r in rows)
    lines += ["", summary + f". {seconds:.0f} s for the table.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=["digits", "wine"], default=["digits", "wine"])
    parser.add_argument("--steps", type=int, default=None, help="Adam steps of the density models (cap)")
    parser.add_argument("--mu", type=float, default=0.3, help="perturbation rate of the background model's data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 20 if args.quick else 4000
    command = " ".join(["python examples/ood_novelty.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"`{command}` (JAX {jax.__version__}, {jax.devices()[0].platform})\n")
    results = []
    for data in args.data:
        result = run_digits(args) if data == "digits" else run_wine(args)
        print(markdown(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
