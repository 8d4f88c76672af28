"""Detection and purification on scikit-learn digits, the PixelDefend way.

The 8x8 digits at 17 levels (``Ordinal(17)``, ``Logistic`` + ``DiscretizedLogisticMixture(5)``)
and binarized at ``x >= 8`` (``Binary``, ``Logistic``: FVSBN). Fixed split:
``perm = numpy.random.RandomState(0).permutation(1797)``, train = ``perm[:1400]``, test =
``perm[1400:]``; the density model is fitted to ``perm[:1200]`` (10% of it held out for early
stopping) and the detectors are calibrated on ``perm[1200:1400]``, held out from fitting.

Out-of-distribution sets, all built from the 397 test images: uniform noise, inverted,
shifted, rotated, occluded (``arprob.ood.shifts``), and FGSM / PGD attacks in integer levels on
a logistic-regression and an MLP classifier (``arprob.ood.attacks``) trained on the same
1200 images, including attacks restricted to the digit's own pixels (``x > 0``). Printed as
Markdown:

1. AUROC per set (in-distribution test images against the set) of the plain likelihood
   (NLL), the complexity correction (PNG bits, Serra et al.), the likelihood ratio against
   a background model fitted to perturbed images (Ren et al., ``--mu``), the best of the
   three, and the fraction of batches of 10 flagged by the typicality test at 5% FPR;
2. classifier accuracy on clean, attacked and purified images (PixelDefend purification
   with the attack's eps, ``arprob.ood.purify``; and its selective variant, which purifies
   only elements costing more than ``--purify-threshold`` bits). On binarized digits an
   eps of one level is the whole range, so plain purification regenerates every image as
   the model's greedy mode; only the selective variant is meaningful there.

    python examples/ood_digits.py                    # both variants, full tables
    python examples/ood_digits.py --variants levels  # 17 levels only
    python examples/ood_digits.py --variants levels --conditioner made   # MADE (64 hidden) instead of Logistic
    python examples/ood_digits.py --variants levels --conditioner made --hidden 500 --dropout 0.3
    python examples/ood_digits.py --quick            # smoke run in seconds (meaningless numbers)
    python examples/ood_digits.py --report runs/ood  # also write PNG histograms, ROC curves, surprisal maps

Runtime on the shared, loaded 2-core development machine: 14 s wall with ``--quick``
(``/usr/bin/time``; docs/examples.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax

import arprob as ar
from arprob.ood import attacks, metrics, plots, shifts

CORRECTIONS = {"NLL": None, "complexity": "complexity", "likelihood ratio": "likelihood_ratio"}


def load(binarize: bool):
    """``(x, y)`` for the fit / calibration / test parts of the fixed split."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = raw.images.astype(np.int64)
    if binarize:
        x = (x >= 8).astype(np.int64)
    perm = np.random.RandomState(0).permutation(len(x))
    parts = {"fit": perm[:1200], "calibration": perm[1200:1400], "test": perm[1400:]}
    return {k: (x[idx], raw.target[idx]) for k, idx in parts.items()}


def build_spec(levels: int, conditioner: str = "logistic", hidden: int = 64, dropout: float = 0.0) -> ar.Spec:
    """17 levels: ``Ordinal`` + mixture head; binarized: ``Binary`` + Bernoulli; Logistic or MADE conditioner."""
    if levels == 2:
        variable, head = ar.Binary("digit", shape=(8, 8)), None
    else:
        variable, head = ar.Ordinal("digit", levels=levels, shape=(8, 8)), ar.DiscretizedLogisticMixture(5)
    cond = ar.Logistic(head=head) if conditioner == "logistic" else ar.MADE(hidden=(hidden,), head=head, dropout=dropout)
    return ar.Spec(variables=(variable,), conditionals={"digit": cond})


def fit_kwargs(args) -> dict:
    if args.quick:
        return {"optimizer": optax.adam(3e-3), "num_steps": args.steps, "batch_size": 100, "seed": args.seed,
                "progress": False}
    return {
        "optimizer": optax.adam(3e-3),
        "num_steps": args.steps,
        "batch_size": 100,
        "seed": args.seed,
        "validation": 0.1,
        "eval_every": 100,
        "patience": 10,
        "progress": False,
    }


def ood_sets(x: np.ndarray, levels: int, seed: int, quick: bool) -> dict[str, np.ndarray]:
    """Named shifted sets built from the test images ``x``."""
    sets = shifts.shifted_sets(x, levels, seed=seed)
    sets["occluded_centre_0"] = shifts.occlude(x, 4, 0, position=(2, 2))  # 4x4 over the digit's middle
    if quick:
        return {k: sets[k] for k in ("noise", "occluded_0")}
    return sets


def attack_sets(classifiers: dict, x, y, levels: int, quick: bool) -> dict[str, tuple[str, int, np.ndarray]]:
    """``name -> (classifier, eps, adversarial images)``."""
    eps_all = [1] if levels == 2 else ([2] if quick else [1, 2, 4])
    eps_digit = [1] if levels == 2 else ([2] if quick else [2, 4])
    out = {}
    for kind, clf in classifiers.items():
        for eps in eps_all:
            if not quick:
                out[f"{kind} FGSM ±{eps}"] = (kind, eps, attacks.fgsm(clf, x, y, eps))
            out[f"{kind} PGD ±{eps}"] = (kind, eps, attacks.pgd(clf, x, y, eps, iterations=10, seed=1))
        for eps in eps_digit:
            adv = attacks.pgd(clf, x, y, eps, iterations=10, seed=2, where=x > 0)
            out[f"{kind} PGD ±{eps} digit pixels"] = (kind, eps, adv)
    return out


def run_variant(levels: int, args) -> dict:
    parts = load(binarize=levels == 2)
    (x_fit, y_fit), (x_cal, _), (x_test, y_test) = parts["fit"], parts["calibration"], parts["test"]
    if args.quick:
        x_test, y_test = x_test[:64], y_test[:64]
    timings = {}
    t0 = time.perf_counter()
    kwargs = fit_kwargs(args)
    spec = build_spec(levels, args.conditioner, args.hidden, args.dropout)
    model = ar.fit(ar.compile(spec, jax.random.key(args.seed)), {"digit": x_fit}, **kwargs).model
    background = ar.ood.fit_background(
        model, {"digit": x_fit}, mu=args.mu, key=jax.random.key(args.seed + 1), **kwargs
    ).model
    timings["fit density + background (s)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    detectors = {
        name: ar.ood.Detector.fit(model, {"digit": x_cal}, correction=corr, background=background, fpr=0.05)
        for name, corr in CORRECTIONS.items()
    }
    typicality = ar.ood.TypicalityTest.fit(
        model, {"digit": x_cal}, batch_size=10, fpr=0.05, reference={"digit": x_fit}, seed=args.seed
    )
    clf_steps = 30 if args.quick else 500
    classifiers = {
        kind: attacks.train_classifier(x_fit, y_fit, kind=kind, levels=levels, num_steps=clf_steps, seed=args.seed)
        for kind in (("logreg",) if args.quick else ("logreg", "mlp"))
    }
    sets = ood_sets(x_test, levels, args.seed, args.quick)
    adversarial = attack_sets(classifiers, x_test, y_test, levels, args.quick)
    sets.update({name: adv for name, (_, _, adv) in adversarial.items()})

    in_scores = {name: det.score({"digit": x_test}) for name, det in detectors.items()}
    realised_fpr = {name: float(np.mean(det.decide(scores=in_scores[name]))) for name, det in detectors.items()}
    typ_in = float(np.mean(typicality.test_batches({"digit": x_test})))
    rows = []
    for set_name, images in sets.items():
        row = {"set": set_name, "changed": float(np.mean(np.any(images != x_test, axis=(1, 2))))}
        for name, det in detectors.items():
            row[name] = metrics.auroc(in_scores[name], det.score({"digit": images}))
        row["best"] = max(row[name] for name in CORRECTIONS)
        row["best_by"] = max(CORRECTIONS, key=lambda n: row[n])
        row["typicality"] = float(np.mean(typicality.test_batches({"digit": images})))
        rows.append(row)
    timings["score (s)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    accuracy = []
    threshold_bits = args.purify_threshold if args.purify_threshold is not None else (2.0 if levels == 2 else 4.0)
    purified_clean = np.asarray(ar.ood.purify(model, {"digit": x_test}, 1 if levels == 2 else 2)["digit"])
    for name, (kind, eps, adv) in adversarial.items():
        clf = classifiers[kind]
        purified = np.asarray(ar.ood.purify(model, {"digit": adv}, eps)["digit"])
        selective = np.asarray(
            ar.ood.purify(model, {"digit": adv}, eps, surprisal_threshold_bits=threshold_bits)["digit"]
        )
        assert np.abs(purified - adv).max() <= eps and np.abs(selective - adv).max() <= eps
        accuracy.append(
            {
                "attack": name,
                "clean": clf.accuracy(x_test, y_test),
                "attacked": clf.accuracy(adv, y_test),
                "purified": clf.accuracy(purified, y_test),
                "purified selective": clf.accuracy(selective, y_test),
                "clean purified": clf.accuracy(purified_clean, y_test),
                "log p attacked": float(np.mean(np.asarray(model.log_prob({"digit": adv})))),
                "log p purified": float(np.mean(np.asarray(model.log_prob({"digit": purified})))),
            }
        )
    timings["purify (s)"] = time.perf_counter() - t0
    if args.report is not None:
        write_report(args.report / f"levels{levels}", model, detectors, in_scores, x_test, sets)
    test_bpd = float(np.mean(np.asarray(model.bits_per_dim({"digit": x_test}))))
    return {
        "levels": levels,
        "conditioner": args.conditioner if args.conditioner == "logistic" else f"MADE ({args.hidden} hidden)",
        "test_bits_per_dim": test_bpd,
        "auroc": rows,
        "accuracy": accuracy,
        "threshold_bits": threshold_bits,
        "realised_fpr": realised_fpr,
        "typicality_in": typ_in,
        "timings": timings,
    }


def write_report(folder: Path, model, detectors, in_scores, x_test, sets) -> None:
    """Histograms and ROC curves of each detector, surprisal maps of a few images per set."""
    chosen = [k for k in sets if not k.startswith("mlp")][:8]
    for name, det in detectors.items():
        outs = {k: det.score({"digit": sets[k]}) for k in chosen}
        slug = name.replace(" ", "_")
        plots.plot_score_histograms(in_scores[name], outs, folder / f"hist_{slug}.png", threshold=det.threshold,
                                    title=f"digits: {name}")
        plots.plot_roc(in_scores[name], outs, folder / f"roc_{slug}.png", title=f"digits: {name}")
    for k in ["test", *chosen]:
        images = x_test[:8] if k == "test" else sets[k][:8]
        maps = ar.ood.surprisal(model, {"digit": images}).maps["digit"]
        plots.plot_surprisal_maps(maps, folder / f"surprisal_{k.replace(' ', '_').replace('±', 'eps')}.png",
                                  images=images, title=f"surprisal per pixel: {k}")


def markdown(result: dict) -> str:
    lines = [
        (
            f"### Digits at {result['levels']} levels, {result['conditioner']} conditioner "
            f"(test bits/dim {result['test_bits_per_dim']:.4f})"
        ),
        "",
        (
            "AUROC of in-distribution test images against each set (higher = better; 0.5 = chance). "
            "`changed`: fraction of images the shift changed at all; `typicality`: fraction of batches of 10 "
            f"flagged at 5% FPR (in-distribution test batches: {result['typicality_in']:.2f})."
        ),
        "",
        "| set | changed | " + " | ".join(CORRECTIONS) + " | best | typicality |",
        "|---|---|" + "---|" * len(CORRECTIONS) + "---|---|",
    ]
    for row in result["auroc"]:
        cells = " | ".join(f"{row[n]:.3f}" for n in CORRECTIONS)
        lines.append(
            f"| {row['set']} | {row['changed']:.2f} | {cells} | {row['best']:.3f} ({row['best_by']}) | "
            f"{row['typicality']:.2f} |"
        )
    fpr = ", ".join(f"{k} {v:.3f}" for k, v in result["realised_fpr"].items())
    lines += ["", f"Realised false-positive rate on the test images at the 5% threshold: {fpr}.", ""]
    lines += [
        (
            "Classifier accuracy (purification with the attack's eps; `selective`: only elements whose surprisal "
            f"exceeds {result['threshold_bits']:g} bits; `clean purified`: clean images purified at "
            f"eps {1 if result['levels'] == 2 else 2}; mean log p in nats):"
        ),
        "",
        "| attack | clean | attacked | purified | selective | clean purified | log p attacked | log p purified |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["accuracy"]:
        lines.append(
            f"| {r['attack']} | {r['clean']:.3f} | {r['attacked']:.3f} | {r['purified']:.3f} | "
            f"{r['purified selective']:.3f} | {r['clean purified']:.3f} | {r['log p attacked']:.2f} | "
            f"{r['log p purified']:.2f} |"
        )
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=["levels", "binary"], default=["levels", "binary"])
    parser.add_argument("--conditioner", choices=["logistic", "made"], default="logistic")
    parser.add_argument("--hidden", type=int, default=64, help="MADE hidden width")
    parser.add_argument("--dropout", type=float, default=0.0, help="MADE dropout while training")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps of the density models (cap)")
    parser.add_argument("--mu", type=float, default=0.3, help="perturbation rate of the background model's data")
    parser.add_argument("--purify-threshold", type=float, default=None,
                        help="surprisal threshold (bits) of the selective purification (default: 4 at 17 levels, 2 binary)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=None, help="folder for the PNG report")
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 20 if args.quick else 4000
    if args.quick:
        args.variants = args.variants[:1]
    command = " ".join(["python examples/ood_digits.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"`{command}` (JAX {jax.__version__}, {jax.devices()[0].platform})\n")
    results = []
    for variant in args.variants:
        result = run_variant(17 if variant == "levels" else 2, args)
        print(markdown(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
