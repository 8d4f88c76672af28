"""Classifiers and L-inf attacks on level images; the shifted sets."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from arprob.data import load_digits
from arprob.ood import attacks, shifts

LEVELS = 17


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits as sk_load

    raw = sk_load()
    perm = np.random.RandomState(0).permutation(len(raw.target))
    x, y = raw.images.astype(np.int64), raw.target
    return x[perm[:600]], y[perm[:600]], x[perm[1400:1600]], y[perm[1400:1600]]


@pytest.fixture(scope="module")
def logreg(digits):
    x, y, _, _ = digits
    return attacks.train_classifier(x, y, kind="logreg", levels=LEVELS, num_steps=150)


def _check_attack(adv, x, eps, where=None):
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= LEVELS - 1
    assert np.abs(adv - x).max() <= eps
    if where is not None:
        np.testing.assert_array_equal(adv[~where], x[~where])


def test_fgsm_and_pgd_stay_in_the_ball_and_lower_accuracy(logreg, digits):
    _, _, x, y = digits
    clean = logreg.accuracy(x, y)
    assert clean > 0.9
    for eps in (1, 3):
        adv = attacks.fgsm(logreg, x, y, eps)
        _check_attack(adv, x, eps)
        assert logreg.accuracy(adv, y) < clean - 0.1
    adv = attacks.pgd(logreg, x, y, 3, step=1, iterations=5, seed=0)
    _check_attack(adv, x, 3)
    assert logreg.accuracy(adv, y) < 0.3
    np.testing.assert_array_equal(adv, attacks.pgd(logreg, x, y, 3, step=1, iterations=5, seed=0))
    where = x > 0  # the digit's own pixels only
    adv = attacks.pgd(logreg, x, y, 2, iterations=5, where=where, seed=1)
    _check_attack(adv, x, 2, where)
    assert logreg.accuracy(adv, y) < clean - 0.1
    np.testing.assert_array_equal(attacks.fgsm(logreg, x, y, 0), x)
    np.testing.assert_array_equal(attacks.pgd(logreg, x, y, 0, iterations=2), x)


def test_mlp_and_float64(digits):
    x, y, xt, yt = digits
    with jax.enable_x64(True):
        mlp = attacks.train_classifier(x, y, kind="mlp", hidden=32, levels=LEVELS, num_steps=100)
        assert mlp.params["w_out"].dtype == np.float64
        clean = mlp.accuracy(xt, yt)
        adv = attacks.pgd(mlp, xt, yt, 2, iterations=3)
        _check_attack(adv, xt, 2)
        assert mlp.accuracy(adv, yt) < clean - 0.1
        assert mlp.logits(xt[:3]).shape == (3, 10) and mlp.logits(xt[:3]).dtype == np.float64
    assert clean > 0.85


def test_attack_errors_name_the_culprit(logreg, digits):
    _, _, x, y = digits
    bad = x.copy()
    bad[2, 3, 4] = 17
    with pytest.raises(ValueError, match=r"x\[2, 3, 4\] = 17 is outside the levels 0..16"):
        attacks.fgsm(logreg, bad, y, 1)
    with pytest.raises(ValueError, match="eps must be a whole number"):
        attacks.pgd(logreg, x, y, 1.5)
    with pytest.raises(ValueError, match="one label per image"):
        attacks.fgsm(logreg, x, y[:-1], 1)
    with pytest.raises(ValueError, match="kind must be 'logreg' or 'mlp'"):
        attacks.train_classifier(x, y, kind="svm")


def test_shifted_sets_are_deterministic_and_in_range():
    _, test = load_digits(binarize=False)
    x = test[:50]
    sets = shifts.shifted_sets(x, LEVELS, seed=3)
    again = shifts.shifted_sets(x, LEVELS, seed=3)
    for name, s in sets.items():
        assert s.shape == x.shape and s.dtype == x.dtype, name
        assert s.min() >= 0 and s.max() <= LEVELS - 1, name
        np.testing.assert_array_equal(s, again[name])
    assert not np.array_equal(sets["noise"], shifts.shifted_sets(x, LEVELS, seed=4)["noise"])
    np.testing.assert_array_equal(shifts.invert(sets["inverted"], LEVELS), x)
    # shift: zero fill, nothing wraps around
    moved = shifts.shift(x, 1, -2)
    np.testing.assert_array_equal(moved[:, 1:, :-2], x[:, :-1, 2:])
    assert not moved[:, 0].any() and not moved[:, :, -2:].any()
    # rotations: four quarter turns are the identity; the resampled path agrees with rot90
    np.testing.assert_array_equal(shifts.rotate(shifts.rotate(x, 180), 180), x)
    np.testing.assert_array_equal(shifts.rotate(x, 90 + 1e-9), shifts.rotate(x, 90))
    np.testing.assert_array_equal(shifts.rotate(x, 90), np.rot90(x, 1, axes=(1, 2)))
    # occlusion: exactly one size x size patch per image set to the value
    occ = shifts.occlude(x, 3, LEVELS - 1, position=(2, 4))
    np.testing.assert_array_equal(occ[:, 2:5, 4:7], LEVELS - 1)
    mask = np.ones(x.shape, bool)
    mask[:, 2:5, 4:7] = False
    np.testing.assert_array_equal(occ[mask], x[mask])
    rand = shifts.occlude(x, 3, 0, seed=5)
    assert np.all((rand != x).sum(axis=(1, 2)) <= 9)
    with pytest.raises(ValueError, match=r"x\[0, 0, 1\] = 17 is outside the levels 0..16"):
        shifts.invert(np.pad(np.full((1, 1, 1), 17), ((0, 0), (0, 0), (1, 0))), LEVELS)
