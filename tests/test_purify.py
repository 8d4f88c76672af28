"""Purification is the sampling scan with a box rule: identity at eps = 0, inside the ball,
cached == naive, for every conditioner and discrete head; it raises the likelihood of
attacked digits. Conditional sampling keeps what is observed."""

import jax
import numpy as np
import pytest

import arprob as ar
from arprob.data import load_digits

CASES = {
    "table": (ar.Ordinal("c", levels=3, shape=(5,)), ar.Table(parents="all"), ar.Singletons()),
    "logistic-dlm": (ar.Ordinal("img", levels=6, shape=(3, 3)), ar.Logistic(head=ar.DiscretizedLogisticMixture(2)),
                     ar.FixedSize(2)),
    "made": (ar.Binary("img", shape=(3, 3)), ar.MADE(hidden=(16,)), ar.Singletons()),
    "transformer": (ar.Ordinal("img", levels=4, shape=(3, 3)), ar.Transformer(width=8, num_heads=2, num_layers=1),
                    ar.FixedSize(3)),
    "wavenet": (ar.Binary("img", shape=(3, 3)), ar.WaveNet(channels=4, num_layers=2), ar.Singletons()),
    "rnn": (ar.Ordinal("img", levels=4, shape=(3, 3)), ar.RNN(hidden=8), ar.Singletons()),
    "pixelcnn-coupled": (ar.Ordinal("img", levels=5, shape=(3, 3, 3)),
                         ar.PixelCNN(channels=6, num_layers=2, head=ar.DiscretizedLogisticMixture(2, coupled=True)),
                         ar.PerPixel()),
}


# float64 for the families whose scans index by steps (the x64 dynamic_slice class of bugs);
# the temperature rule (same scan, other choice) for two caches.
ROWS = [(c, False) for c in sorted(CASES)] + [("table", True), ("made", True), ("pixelcnn-coupled", True)]
TEMPERATURE = {"made", "pixelcnn-coupled"}


@pytest.mark.parametrize("case,x64", ROWS, ids=[f"{c}-{'float64' if x else 'float32'}" for c, x in ROWS])
def test_purify_is_identity_at_zero_stays_in_the_ball_and_equals_naive(case, x64):
    var, cond, part = CASES[case]
    with jax.enable_x64(x64):
        ordering = ar.Raster() if case == "pixelcnn-coupled" else ar.RandomOrder(seed=1)
        spec = ar.Spec(variables=[var], ordering=ordering, partition=part, conditionals={var.name: cond})
        model = ar.compile(spec, jax.random.key(0))
        levels = var.num_values
        x = {var.name: np.random.default_rng(0).integers(0, levels, (6, *var.shape))}
        flat = np.asarray(model.to_flat(x))
        assert np.array_equal(np.asarray(model.to_flat(ar.ood.purify(model, x, 0))), flat)
        cached = np.asarray(model.to_flat(ar.ood.purify(model, x, 1)))
        naive = np.asarray(model.to_flat(ar.ood.purify(model, x, 1, naive=True)))
        assert np.array_equal(cached, naive)
        assert np.abs(cached - flat).max() <= 1 and cached.min() >= 0 and cached.max() <= levels - 1
        assert not np.array_equal(cached, flat)  # a random model moves some element
        if case in TEMPERATURE:
            key = jax.random.key(2)
            hot = np.asarray(model.to_flat(ar.ood.purify(model, x, 2, temperature=0.5, key=key)))
            hot_naive = np.asarray(model.to_flat(ar.ood.purify(model, x, 2, temperature=0.5, key=key, naive=True)))
            assert np.array_equal(hot, hot_naive)
            assert np.abs(hot - flat).max() <= 2


def test_unordered_categorical_elements_are_kept_and_nan_thresholds_refused():
    colour = ar.Categorical("colour", 3, shape=(2,), states=("rot", "grün", "blau"))
    level = ar.Ordinal("level", levels=5, shape=(2,))
    spec = ar.Spec(variables=[colour, level], conditionals={"colour": ar.Table(), "level": ar.Table()})
    x = {"colour": np.array([[0, 2], [1, 0]]), "level": np.array([[4, 0], [2, 3]])}
    data = {"colour": np.array([[1, 1]] * 20), "level": np.array([[2, 2]] * 20)}  # every element pulled to 1 / 2
    model = ar.fit(ar.compile(spec), data, num_steps=0).model
    out = ar.ood.purify(model, x, 4)
    assert np.array_equal(np.asarray(out["colour"]), x["colour"])  # unordered: kept
    assert np.asarray(out["level"]).tolist() == [[2, 2], [2, 2]]  # ordered: moved
    with pytest.raises(ar.DataError, match="Categorical"):
        ar.ood.purify(model, x, {"colour": 1})
    with pytest.raises(ar.DataError, match="finite"):
        ar.ood.purify(model, x, 1, surprisal_threshold_bits=float("nan"))


def test_greedy_choice_is_the_best_level_of_the_box_for_a_single_element():
    data = np.array([0, 1, 1, 4, 4, 4, 6])
    spec = ar.Spec(variables=[ar.Ordinal("v", levels=7)], conditionals={"v": ar.Table(prior=0.0)})
    model = ar.fit(ar.compile(spec), {"v": data}, num_steps=0).model
    x = np.array([0, 2, 3, 5, 6])
    counts = np.bincount(data, minlength=7)
    expected = [max(range(max(0, v - 2), min(6, v + 2) + 1), key=lambda j: (counts[j], -j)) for v in x]
    assert expected == [1, 4, 4, 4, 4]
    assert np.asarray(ar.ood.purify(model, {"v": x}, 2)["v"]).tolist() == expected
    # Only where the input costs more than the threshold: p(0) = p(6) = 1/7 cost 2.81 bits,
    # p(2) = p(3) = p(5) = 0 cost infinitely many.
    out = ar.ood.purify(model, {"v": x}, 2, surprisal_threshold_bits=3.0)
    assert np.asarray(out["v"]).tolist() == [0, 4, 4, 4, 6]
    out = ar.ood.purify(model, {"v": x}, 2, surprisal_threshold_bits=2.0)
    assert np.asarray(out["v"]).tolist() == expected


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_scoring_only_the_box_picks_what_scoring_every_level_picks(x64):
    """``radius``: the box rules score 2 radius + 1 candidate columns (``Head.level_columns``)
    instead of all L levels; same choices, also for the temperature rule."""
    from arprob.choice import BoxArgmax, BoxSample

    variable = ar.Ordinal("v", levels=17)
    heads = [ar.DiscretizedLogisticMixture(3).bind(variable), ar.CategoricalHead().bind(variable)]
    rng = np.random.default_rng(0)
    with jax.enable_x64(x64):
        dtype = jax.numpy.float64 if x64 else jax.numpy.float32
        ref = jax.numpy.asarray(rng.integers(0, 17, 300), dtype)
        eps = jax.numpy.asarray(rng.integers(0, 3, 300), dtype)
        u = jax.numpy.asarray(rng.uniform(size=(300, 1)), dtype)
        for head in heads:
            params = jax.numpy.asarray(rng.normal(0, 2, (300, head.num_params)), dtype)
            choose = jax.jit(lambda rule, *inputs: rule.choose(head, params, inputs), static_argnums=0)
            everything = np.asarray(choose(BoxArgmax(), ref, eps))
            assert np.array_equal(np.asarray(choose(BoxArgmax(radius=2), ref, eps)), everything)
            assert np.abs(everything - np.asarray(ref)).max() <= 2 and not np.array_equal(everything, np.asarray(ref))
            hot = [np.asarray(choose(BoxSample(0.7, radius=r), u, ref, eps)) for r in (None, 2)]
            assert np.array_equal(*hot)


def test_purification_raises_the_likelihood_of_attacked_digits():
    train, test = load_digits(binarize=False)
    spec = ar.Spec(variables=[ar.Ordinal("img", levels=17, shape=(8, 8))],
                   conditionals={"img": ar.Logistic(head=ar.DiscretizedLogisticMixture(3))})
    model = ar.fit(ar.compile(spec, jax.random.key(0)), {"img": train}, num_steps=300, batch_size=128).model
    clf = ar.ood.attacks.train_classifier(train, load_labels_like(train), kind="logreg", num_steps=200)
    x, y = test[:100], load_labels_like(test)[:100]
    adv = ar.ood.attacks.pgd(clf, x, y, eps=2, levels=17)
    before = float(model.log_prob({"img": adv}).mean())
    purified = ar.ood.purify(model, {"img": adv}, 2)
    assert float(model.log_prob(purified).mean()) > before + 5
    assert np.abs(np.asarray(purified["img"]) - adv).max() <= 2


def load_labels_like(images):
    """Labels of the bundled digits split, matched to the images by the fixed permutation."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    perm = np.random.RandomState(0).permutation(len(d.target))
    labels = d.target[perm]
    return labels[:1400] if len(images) == 1400 else labels[1400:]


def test_conditional_sampling_keeps_the_observed_prefix_and_matches_sample_when_nothing_is_observed():
    spec = ar.Spec(variables=[ar.Binary("img", shape=(3, 3))], conditionals={"img": ar.MADE(hidden=(16,))})
    model = ar.compile(spec, jax.random.key(0))
    x = model.sample(jax.random.key(4), 5)
    none = model.sample_conditional(jax.random.key(4), x, np.zeros(9, bool))
    assert np.array_equal(np.asarray(none["img"]), np.asarray(x["img"]))
    mask = np.zeros((3, 3), bool)
    mask[0] = True
    out = model.sample_conditional(jax.random.key(5), x, {"img": mask})
    assert np.array_equal(np.asarray(out["img"])[:, 0], np.asarray(x["img"])[:, 0])
    with pytest.raises(ar.DataError, match="observed\\['img'\\]: expected shape"):
        model.sample_conditional(jax.random.key(5), x, {"img": np.zeros(4, bool)})
    with pytest.raises(ar.DataError, match="boolean"):
        model.sample_conditional(jax.random.key(5), x, np.zeros(9))


def test_bad_eps_names_the_variable():
    spec = ar.Spec(variables=[ar.Binary("img", shape=(2,))])
    model = ar.compile(spec)
    with pytest.raises(ar.DataError, match="eps for 'img'"):
        ar.ood.purify(model, {"img": np.zeros((1, 2), int)}, -1)
    with pytest.raises(ar.DataError, match="unknown variable 'nope'"):
        ar.ood.purify(model, {"img": np.zeros((1, 2), int)}, {"nope": 1})
