"""Detection metrics against scikit-learn, their edge cases and errors; the detection PNGs."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import sklearn.metrics as skm

from arprob.ood import metrics, plots


def _cases():
    """Score pairs with many ties (small integer scores), continuous scores and tiny samples."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(60):
        n0, n1 = (int(v) for v in rng.integers(1, 50, size=2))
        if i % 3 == 0:
            out.append((rng.normal(size=n0), rng.normal(0.7, 1.0, size=n1)))
        else:
            out.append((rng.integers(0, 5, n0).astype(float), rng.integers(0, 7, n1).astype(float)))
    out.append((np.array([1.0]), np.array([2.0])))
    out.append((np.array([3.0, 3.0]), np.array([3.0])))
    return out


CASES = _cases()


def _sk(s_in, s_out):
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    return y, np.r_[s_in, s_out]


def test_auroc_and_aupr_equal_sklearn():
    for s_in, s_out in CASES:
        y, s = _sk(s_in, s_out)
        assert metrics.auroc(s_in, s_out) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        assert metrics.aupr(s_in, s_out) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)


def test_roc_curve_and_fpr_at_tpr_equal_sklearn():
    for s_in, s_out in CASES:
        y, s = _sk(s_in, s_out)
        fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
        our_fpr, our_tpr, our_thr = metrics.roc_curve(s_in, s_out)
        np.testing.assert_allclose(our_fpr, fpr, atol=1e-12)
        np.testing.assert_allclose(our_tpr, tpr, atol=1e-12)
        np.testing.assert_allclose(our_thr[1:], thr[1:])
        for target in (0.5, 0.8, 0.95, 1.0):
            first = int(np.argmax(tpr >= target - 1e-12))  # sklearn's curve: first point reaching the TPR
            assert metrics.fpr_at_tpr(s_in, s_out, target) == pytest.approx(fpr[first], abs=1e-12)


def test_detection_rate_is_the_best_tpr_within_the_fpr():
    for s_in, s_out in CASES:
        for target in (0.0, 0.05, 0.2, 1.0):
            got = metrics.detection_rate(s_in, s_out, target)
            thresholds = np.r_[s_in, s_out, -np.inf, np.inf]
            best = max(np.mean(s_out > t) for t in thresholds if np.mean(s_in > t) <= target + 1e-12)
            assert got == pytest.approx(best, abs=1e-12)


def test_exact_values_on_known_samples():
    assert metrics.auroc([0, 1, 2], [3, 4]) == 1.0
    assert metrics.auroc([3, 4], [0, 1, 2]) == 0.0
    assert metrics.auroc([1, 1], [1, 1, 1]) == 0.5  # every pair tied: half each
    assert metrics.auroc([0, 1], [1, 2]) == pytest.approx(0.875)  # 3 wins and 1 tie of 4 pairs
    assert metrics.aupr([0, 0, 0], [1]) == 1.0
    assert metrics.fpr_at_tpr(np.arange(100), np.arange(100) + 50.0, 0.95) == pytest.approx(0.45)  # t = 55
    assert metrics.detection_rate(np.arange(100.0), np.arange(100.0) + 50, 0.1) == pytest.approx(0.60)  # t = 89
    # permuting either sample changes nothing
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=40), rng.normal(size=30)
    assert metrics.auroc(a, b) == metrics.auroc(rng.permutation(a), rng.permutation(b))
    assert math.isclose(metrics.auroc(a, b) + metrics.auroc(b, a), 1.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.auroc([0.0, np.nan], [1.0]), r"in_scores\[1\] = nan; scores must be numbers or \+inf"),
        (lambda: metrics.aupr([0.0], [1.0, -np.inf]), r"out_scores\[1\] = -inf"),
        (lambda: metrics.auroc([], [1.0]), "in_scores: expected at least one score"),
        (lambda: metrics.auroc(np.zeros((2, 2)), [1.0]), r"in_scores: expected a 1-D array.*\(2, 2\)"),
        (lambda: metrics.fpr_at_tpr([0.0], [1.0], 1.5), r"tpr must lie in \[0, 1\]; got 1.5"),
        (lambda: metrics.detection_rate([0.0], [1.0], -0.1), "fpr must lie in"),
    ],
)
def test_bad_scores_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_plus_inf_is_the_most_anomalous_score():
    """A record of probability 0 (score +inf) ranks above every finite score, ties with other +inf."""
    from sklearn.metrics import roc_auc_score

    s_in, s_out = [0.0, 1.0, np.inf], [np.inf, 2.0, 0.5]
    big = [0.0, 1.0, 1e300], [1e300, 2.0, 0.5]  # the same ranks with finite numbers
    assert metrics.auroc(s_in, s_out) == roc_auc_score([0] * 3 + [1] * 3, big[0] + big[1])
    assert metrics.aupr(s_in, s_out) == metrics.aupr(*big)
    assert metrics.fpr_at_tpr(s_in, s_out, 0.95) == metrics.fpr_at_tpr(*big, 0.95)


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    s_in, outs = rng.normal(size=200), {"noise": rng.normal(3, 1, 100), "shifted": rng.normal(1, 1, 100)}
    plots.plot_score_histograms(s_in, outs, tmp_path / "hist.png", threshold=1.6)
    plots.plot_roc(s_in, outs["noise"], tmp_path / "roc.png")
    plots.plot_surprisal_maps(rng.exponential(size=(3, 8, 8)), tmp_path / "maps.png", images=np.ones((3, 8, 8)))
    for name in ("hist.png", "roc.png", "maps.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist.png", "maps.png", "roc.png"]  # no temporary left
    with pytest.raises(ValueError, match=r"surprisal: expected \(n, H, W\)"):
        plots.plot_surprisal_maps(np.ones(5), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plots_without_matplotlib_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes `import matplotlib.figure` fail
    with pytest.raises(ImportError, match=r"pip install 'arprob\[plot\]'"):
        plots.plot_roc([0.0, 1.0], [2.0], tmp_path / "roc.png")
    assert not (tmp_path / "roc.png").exists()
