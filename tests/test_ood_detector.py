"""Detector: rank p-values, thresholds, corrections, typicality, surprisal, persistence."""

import os

import jax
import numpy as np
import pytest
from scipy import stats

import arprob as ar
from arprob.data import load_digits

FPR = 0.05


@pytest.fixture(scope="module", params=[False, True], ids=["float32", "float64"])
def digits_model(request):
    """An FVSBN fitted to binarized digits (train[:1100]), with a held-out calibration part."""
    with jax.enable_x64(request.param):
        train, test = load_digits(binarize=True)
        spec = ar.Spec(variables=[ar.Binary("img", shape=(8, 8))], conditionals={"img": ar.Logistic()})
        model = ar.fit(ar.compile(spec, jax.random.key(0)), {"img": train[:1100]}, num_steps=300, batch_size=100).model
        yield model, {"img": train[1100:]}, {"img": test}


def test_rank_p_values_match_the_pixeldefend_formula():
    rng = np.random.default_rng(0)
    cal = rng.integers(0, 20, 50).astype(float)  # ties on purpose
    s = np.array([-1.0, 0.0, 7.0, 19.0, 25.0])
    p = ar.ood.rank_p_values(cal, s)
    expected = [(1 + np.sum(cal >= v)) / (cal.size + 1) for v in s]
    np.testing.assert_array_equal(p, expected)
    assert p.min() > 0 and p[-1] == 1 / 51
    lower = np.array([(1 + np.sum(cal <= v)) / 51 for v in s])
    np.testing.assert_array_equal(ar.ood.rank_p_values(cal, s, two_sided=True), np.minimum(1, 2 * np.minimum(p, lower)))


def test_held_out_p_values_are_uniform_and_the_threshold_keeps_its_false_positive_rate(digits_model):
    model, _, _ = digits_model
    # Fresh in-distribution data: the model's own samples (exchangeable with the calibration set).
    calibration = model.sample(jax.random.key(1), 3000)
    fresh = model.sample(jax.random.key(2), 4000)
    det = ar.ood.Detector.fit(model, calibration, fpr=FPR)
    p = det.p_values(fresh)
    assert stats.kstest(p, "uniform").pvalue > 0.01
    realised = det.decide(fresh).mean()
    sigma = np.sqrt(FPR * (1 - FPR) / 4000)
    assert abs(realised - FPR) < 4 * sigma + 1 / 3001, realised
    assert np.array_equal(det.decide(fresh), det.score(fresh) > det.threshold)


def test_uniform_noise_is_detected(digits_model):
    model, calibration, test = digits_model
    det = ar.ood.Detector.fit(model, calibration)
    noise = {"img": np.random.default_rng(0).integers(0, 2, (300, 8, 8))}
    assert ar.ood.auroc(det.score(test), det.score(noise)) > 0.99
    assert det.decide(noise).mean() > 0.99


def test_calibration_set_too_small_for_the_rate_is_an_error(digits_model):
    model, calibration, _ = digits_model
    few = {"img": calibration["img"][:10]}
    with pytest.raises(ar.DataError, match="10 records.*fpr=0.05 needs at least 19"):
        ar.ood.Detector.fit(model, few, fpr=0.05)
    with pytest.raises(ar.DataError, match="two-sided"):
        ar.ood.Detector.fit(model, {"img": calibration["img"][:30]}, fpr=0.05, two_sided=True)
    with pytest.raises(ValueError, match="false-positive rate"):
        ar.ood.Detector.fit(model, calibration, fpr=1.5)


def test_likelihood_ratio_is_log_p_minus_log_p_background(digits_model):
    model, calibration, test = digits_model
    background = ar.ood.fit_background(model, calibration, mu=0.2, key=jax.random.key(3), num_steps=30).model
    det = ar.ood.Detector.fit(model, calibration, correction="likelihood_ratio", background=background)
    llr = np.asarray(model.log_prob(test), np.float64) - np.asarray(background.log_prob(test), np.float64)
    np.testing.assert_allclose(-det.score(test), llr, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="background"):
        ar.ood.Detector.fit(model, calibration, correction="likelihood_ratio")


def test_complexity_correction_subtracts_png_bits(digits_model):
    model, calibration, test = digits_model
    det = ar.ood.Detector.fit(model, calibration, correction="complexity")
    x = model.to_flat(test)
    bits = ar.ood.complexity_bits(model.spec, np.asarray(x))
    nll_bits = -np.asarray(model.log_prob(test), np.float64) / np.log(2)
    np.testing.assert_allclose(det.score(test), nll_bits - bits, atol=1e-9)
    blank = ar.ood.complexity_bits(model.spec, np.zeros((1, 64)))
    noisy = ar.ood.complexity_bits(model.spec, np.random.default_rng(0).integers(0, 2, (1, 64)))
    assert blank[0] < noisy[0]


def test_perturb_replaces_a_fraction_mu_by_uniform_levels():
    spec = ar.Spec(variables=[ar.Ordinal("img", levels=17, shape=(8, 8)), ar.Real("t")])
    x = {"img": np.zeros((2000, 8, 8), np.int64), "t": np.zeros(2000)}
    same = ar.ood.perturb(jax.random.key(0), spec, x, 0.0)
    assert np.array_equal(same["img"], x["img"]) and np.array_equal(same["t"], x["t"])
    out = ar.ood.perturb(jax.random.key(0), spec, x, 0.3)
    img = out["img"]
    assert img.min() >= 0 and img.max() <= 16
    # P(changed) = mu * (1 - 1/L) for a uniform replacement level.
    assert abs((img != 0).mean() - 0.3 * 16 / 17) < 0.01
    assert abs((out["t"] != 0).mean() - 0.3) < 0.04


def test_typicality_flags_noise_batches_and_rarely_flags_in_distribution_batches(digits_model):
    model, calibration, test = digits_model
    tt = ar.ood.TypicalityTest.fit(model, calibration, batch_size=10, fpr=FPR)
    assert tt.test({"img": np.random.default_rng(1).integers(0, 2, (10, 8, 8))})
    assert tt.test_batches(test).mean() < 0.2


def test_surprisal_maps_add_up_to_the_nll(digits_model):
    model, _, test = digits_model
    s = ar.ood.surprisal(model, test)
    assert s.maps["img"].shape == (397, 8, 8)
    np.testing.assert_allclose(s.bits.sum(1), -np.asarray(model.log_prob(test)) / np.log(2), rtol=1e-5)
    np.testing.assert_allclose(s.shares["img"], 1.0)
    assert s.costliest(3).shape == (397, 3)


def test_detector_round_trips_and_a_damaged_file_raises_and_changes_nothing(digits_model, tmp_path):
    model, calibration, test = digits_model
    ckpt = tmp_path / "model.ckpt"
    ar.save_checkpoint(ckpt, model=model, step=0)
    det = ar.ood.Detector.fit(model, calibration, fpr=0.1, two_sided=True, model_path=ckpt)
    path = tmp_path / "det.arprob"
    det.save(path)
    loaded = ar.ood.Detector.load(path)  # the model comes back from the recorded checkpoint
    assert np.array_equal(loaded.calibration, det.calibration)
    assert (loaded.fpr, loaded.two_sided, loaded.correction) == (0.1, True, None)
    np.testing.assert_array_equal(loaded.p_values(test), det.p_values(test))
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []

    raw = path.read_bytes()
    cut = tmp_path / "cut.arprob"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ar.CheckpointError, match="truncated|corrupted"):
        ar.ood.Detector.load(cut, model=model)
    assert cut.read_bytes() == raw[: len(raw) // 2]
    with pytest.raises(ar.CheckpointError, match="expected 'arprob.detector/1'"):
        ar.ood.Detector.load(ckpt, model=model)
    other = ar.compile(model.spec, jax.random.key(9))
    with pytest.raises(ar.CheckpointError, match="weights differ"):
        ar.ood.Detector.load(path, model=other)


def test_fit_background_returns_the_fit_result(digits_model):
    model, calibration, _ = digits_model
    result = ar.ood.fit_background(model, calibration, mu=0.2, key=jax.random.key(3), num_steps=5)
    assert isinstance(result, ar.FitResult) and len(result.history["loss"]) == 5
    assert result.model.spec == model.spec


def test_fused_score_is_the_min_p_value_of_its_components_and_keeps_its_rate(digits_model, tmp_path):
    model, calibration, test = digits_model
    background = ar.ood.fit_background(model, calibration, mu=0.3, key=jax.random.key(4), num_steps=20).model
    det = ar.ood.Detector.fit(model, calibration, correction="fused", background=background)
    n = calibration["img"].shape[0]
    assert det.components.shape == (3, n)
    parts = ar.ood.raw_scores_many(model, test, background=background)
    comps = np.stack([parts[c] for c in (None, "complexity", "likelihood_ratio")])
    for c, row in zip((None, "complexity", "likelihood_ratio"), comps):
        np.testing.assert_allclose(row, ar.ood.raw_scores(model, test, correction=c, background=background), atol=1e-9)
    # max_j -log p_j, p_j the rank p-value against component j's calibration scores
    p = np.stack([ar.ood.rank_p_values(cal, s) for cal, s in zip(det.components, comps)])
    fused = det.score(test)
    gap = 0.5 * np.log((n + 1) / n)
    assert np.all(fused >= -np.log(p.min(0)) - 1e-12) and np.all(fused <= -np.log(p.min(0)) + gap)
    # leave-one-out calibration keeps the rate on exchangeable data (the model's own samples)
    on_samples = ar.ood.Detector.fit(model, model.sample(jax.random.key(5), 1000), correction="fused",
                                     background=background)
    realised = on_samples.decide(model.sample(jax.random.key(6), 3000)).mean()
    assert abs(realised - FPR) < 4 * np.sqrt(FPR * (1 - FPR) / 3000) + 2 / 1001, realised
    noise = {"img": np.random.default_rng(0).integers(0, 2, (200, 8, 8))}
    assert ar.ood.auroc(det.score(test), det.score(noise)) > 0.99
    # persisted: components stored, fused calibration recomputed on load
    det.save(tmp_path / "fused.ardet")
    back = ar.ood.Detector.load(tmp_path / "fused.ardet", model=model, background=background)
    np.testing.assert_array_equal(back.calibration, det.calibration)
    np.testing.assert_array_equal(back.score(test), fused)
    # without a background: NLL and complexity only
    assert ar.ood.Detector.fit(model, calibration, correction="fused").components.shape == (2, n)


def test_several_detectors_over_one_model_compute_log_p_once(digits_model, monkeypatch):
    from arprob.ood import detector as detector_module

    model, calibration, test = digits_model
    background = ar.ood.fit_background(model, calibration, mu=0.3, key=jax.random.key(4), num_steps=10).model
    dets = {c: ar.ood.Detector.fit(model, calibration, correction=c, background=background)
            for c in ar.ood.CORRECTIONS}
    expected = {c: d.score(test) for c, d in dets.items()}
    calls = []
    original = detector_module._log_prob
    monkeypatch.setattr(detector_module, "_log_prob", lambda m, *a, **k: calls.append(m) or original(m, *a, **k))
    got = ar.ood.score_detectors(dets, test)
    assert len(calls) == 2 and calls[0] is model and calls[1] is background  # one pass per model
    for c in ar.ood.CORRECTIONS:
        np.testing.assert_array_equal(got[c], expected[c])
