"""``arprob digits``: the bundled main job on scikit-learn digits (fixed split)."""

from __future__ import annotations

import argparse
import math
import time

import jax
import numpy as np
import optax

import arprob as ar

from ..data import load_digits, load_digits_labelled


def run(args: argparse.Namespace) -> int:
    """Baseline, context table and FVSBN on binarized digits; then the detection section."""
    train, test = load_digits(binarize=True, threshold=8)
    image = ar.Binary("img", shape=(8, 8))
    models = {
        "independent Bernoulli (baseline)": ar.Table(parents=(), prior=1.0),
        "context table (4 causal neighbours)": ar.Table(neighbours=((0, -1), (-1, -1), (-1, 0), (-1, 1)), prior=1.0),
        "FVSBN (logistic)": ar.Logistic(),
    }
    print(f"scikit-learn digits, binarized at x >= 8: {len(train)} train / {len(test)} test images, D = 64")
    print(f"{'model':40s} {'test NLL (nats)':>16s} {'bits/dim':>9s} {'fit (s)':>8s}")
    for name, conditional in models.items():
        spec = ar.Spec(variables=(image,), conditionals={"img": conditional})
        start = time.perf_counter()
        model = ar.compile(spec, jax.random.key(args.seed))
        model = ar.fit(
            model, {"img": train}, num_steps=args.steps, batch_size=args.batch_size, seed=args.seed,
            optimizer=optax.adam(args.learning_rate),
        ).model
        nll = -float(model.log_prob({"img": test}).mean())
        print(f"{name:40s} {nll:16.3f} {nll / (64 * math.log(2)):9.4f} {time.perf_counter() - start:8.1f}")
    if args.detection_steps > 0:
        detection_section(args)
    return 0


def detection_section(args: argparse.Namespace) -> None:
    """17-level digits: a detector on a Logistic + mixture model, a PGD attack on a
    logistic-regression classifier, and PixelDefend purification (docs/ood.md)."""
    start = time.perf_counter()
    (train, y_train), (test, y_test) = load_digits_labelled(binarize=False)
    fit_part, cal_part = train[:1100], train[1100:]
    spec = ar.Spec(variables=(ar.Ordinal("img", levels=17, shape=(8, 8)),),
                   conditionals={"img": ar.Logistic(head=ar.DiscretizedLogisticMixture(3))})
    model = ar.fit(ar.compile(spec, jax.random.key(args.seed)), {"img": fit_part}, num_steps=args.detection_steps,
                   batch_size=args.batch_size, seed=args.seed, optimizer=optax.adam(args.learning_rate)).model
    det = ar.ood.Detector.fit(model, {"img": cal_part}, fpr=0.05)
    clf = ar.ood.attacks.train_classifier(train, y_train, kind="logreg", levels=17, seed=args.seed)
    attacked = ar.ood.attacks.pgd(clf, test, y_test, eps=2, levels=17, seed=args.seed)
    noise = ar.ood.shifts.uniform_noise(len(test), (8, 8), 17, seed=args.seed)
    purified = np.asarray(ar.ood.purify(model, {"img": attacked}, 2)["img"])
    s_test = det.score({"img": test})
    nll_test = float(s_test.mean())
    print(f"\ndetection (17 levels, Logistic + DiscretizedLogisticMixture(3), {args.detection_steps} steps; "
          f"test NLL {nll_test:.2f} nats; calibrated on {det.num_calibration} held-out training images, fpr 0.05)")
    print(f"{'test set':40s} {'AUROC':>8s} {'flagged':>8s}")
    print(f"{'clean test digits':40s} {'-':>8s} {det.decide(scores=s_test).mean():8.1%}")
    for name, x in {"uniform noise": noise, "PGD +-2 levels on logistic regression": attacked}.items():
        s = det.score({"img": x})
        print(f"{name:40s} {ar.ood.auroc(s_test, s):8.3f} {det.decide(scores=s).mean():8.1%}")
    print(f"logistic-regression accuracy: clean {clf.accuracy(test, y_test):.3f}, attacked "
          f"{clf.accuracy(attacked, y_test):.3f}, purified (eps 2) {clf.accuracy(purified, y_test):.3f} "
          f"[{time.perf_counter() - start:.1f} s]")
