"""Small JAX classifiers for level-valued images and L-inf attacks on them (FGSM, PGD).

The classifiers read an image in levels ``0..L-1`` as the features ``x / (L - 1)``:

- ``kind="logreg"``: multinomial logistic regression, ``logits = z W + b``;
- ``kind="mlp"``: one hidden ReLU layer, ``logits = relu(z W1 + b1) W2 + b2``.

They are trained by full-batch Adam (optax) on the mean cross-entropy plus an L2 penalty.
The attacks work **in integer levels**: ``eps`` and the step size are whole levels, every
update is ``+-step`` per element, and every iterate is projected onto the eps-ball around
the clean image and onto ``[0, L-1]``, so the result is an integer image that a level model
can score, with ``|x_adv - x| <= eps`` element-wise. An optional boolean ``where`` mask
restricts the change to some elements (``where=x > 0``: the digit's own pixels, the attack a
plain likelihood finds hardest to see).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike

__all__ = ["Classifier", "fgsm", "pgd", "train_classifier"]


def _float_dtype():
    return jnp.result_type(float)  # float32 unless x64 is enabled


class Classifier(eqx.Module):
    """A trained image classifier: ``logits(x)`` for level images ``(n, *shape)`` or ``(n, D)``."""

    params: dict[str, Array]
    kind: str = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)

    def _features(self, x) -> Array:
        x = jnp.asarray(x)
        d = int(np.prod(self.shape))
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != d:
            raise ValueError(f"Classifier: expected images of shape (n, {self.shape}) or (n, {d}); got {x.shape}.")
        return x.reshape(-1, d).astype(self.params["b_out"].dtype) / (self.levels - 1)

    def logits(self, x: ArrayLike) -> Array:
        """Class logits ``(n, classes)``; differentiable in ``x`` (levels as floats)."""
        z = self._features(x)
        if self.kind == "mlp":
            z = jax.nn.relu(z @ self.params["w_hidden"] + self.params["b_hidden"])
        return z @ self.params["w_out"] + self.params["b_out"]

    def __call__(self, x: ArrayLike) -> Array:
        return self.logits(x)

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Most likely class per image."""
        return np.asarray(_predict(self, jnp.asarray(x)))

    def accuracy(self, x: ArrayLike, y: ArrayLike) -> float:
        """Fraction of images whose most likely class is ``y``."""
        y = np.asarray(y)
        return float(np.mean(self.predict(x) == y))


@eqx.filter_jit
def _predict(classifier: Classifier, x: Array) -> Array:
    return jnp.argmax(classifier.logits(x), axis=-1)


def _cross_entropy(logits: Array, y: Array) -> Array:
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=-1)[:, 0]


def train_classifier(
    x: ArrayLike,
    y: ArrayLike,
    *,
    kind: str = "logreg",
    levels: int | None = None,
    hidden: int = 128,
    num_steps: int = 500,
    learning_rate: float = 1e-2,
    l2: float = 1e-4,
    seed: int = 0,
) -> Classifier:
    """Fit a ``"logreg"`` or ``"mlp"`` classifier to level images ``x`` (n, ...) and labels ``y``.

    Full-batch Adam for ``num_steps`` steps on ``mean CE + l2 * sum(W ** 2)`` (weights only).
    ``levels`` defaults to ``x.max() + 1``; the number of classes is ``y.max() + 1``.
    """
    if kind not in ("logreg", "mlp"):
        raise ValueError(f"train_classifier: kind must be 'logreg' or 'mlp'; got {kind!r}.")
    x_np, y_np = np.asarray(x), np.asarray(y)
    if x_np.ndim < 2 or x_np.shape[0] != y_np.shape[0] or y_np.ndim != 1:
        raise ValueError(f"train_classifier: expected x (n, ...) and y (n,); got {x_np.shape} and {y_np.shape}.")
    if not np.issubdtype(y_np.dtype, np.integer) or y_np.min() < 0:
        raise ValueError("train_classifier: y must hold non-negative integer class labels.")
    levels = int(x_np.max()) + 1 if levels is None else int(levels)
    if levels < 2 or x_np.min() < 0 or x_np.max() >= levels:
        raise ValueError(f"train_classifier: x must hold levels in 0..{levels - 1}; got {x_np.min()}..{x_np.max()}.")
    shape = tuple(int(s) for s in x_np.shape[1:])
    d, classes = int(np.prod(shape)), int(y_np.max()) + 1
    dtype = _float_dtype()
    k1, k2 = jax.random.split(jax.random.key(seed))
    if kind == "logreg":
        params = {"w_out": jnp.zeros((d, classes), dtype), "b_out": jnp.zeros((classes,), dtype)}
    else:
        params = {
            "w_hidden": jax.random.normal(k1, (d, hidden), dtype) * jnp.sqrt(2.0 / d).astype(dtype),
            "b_hidden": jnp.zeros((hidden,), dtype),
            "w_out": jax.random.normal(k2, (hidden, classes), dtype) / jnp.sqrt(hidden).astype(dtype),
            "b_out": jnp.zeros((classes,), dtype),
        }
    model = Classifier(params=params, kind=kind, levels=levels, shape=shape)
    optimizer = optax.adam(learning_rate)
    xs, ys = jnp.asarray(x_np.reshape(len(x_np), d), dtype), jnp.asarray(y_np)
    return _train(model, xs, ys, optimizer, int(num_steps), float(l2))


@eqx.filter_jit
def _train(model: Classifier, x: Array, y: Array, optimizer, num_steps: int, l2: float) -> Classifier:
    def loss(params):
        m = eqx.tree_at(lambda c: c.params, model, params)
        penalty = sum(jnp.sum(v**2) for k, v in params.items() if k.startswith("w_"))
        return jnp.mean(_cross_entropy(m.logits(x), y)) + l2 * penalty

    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss)(params)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    params = model.params
    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=num_steps)
    return eqx.tree_at(lambda c: c.params, model, params)


# --------------------------------------------------------------------------- attacks
def _attack_inputs(classifier, x: ArrayLike, y: ArrayLike, eps: int, where: ArrayLike | None, levels: int | None):
    x_np = np.asarray(x)
    if not np.issubdtype(x_np.dtype, np.integer) and np.any(x_np != np.round(x_np)):
        raise ValueError("attack: x must hold integer levels.")
    levels = int(getattr(classifier, "levels", 0) or 0) if levels is None else int(levels)
    if levels < 2:
        raise ValueError("attack: pass levels= (the classifier does not say how many levels the images have).")
    if x_np.min() < 0 or x_np.max() >= levels:
        bad = np.unravel_index(np.flatnonzero((x_np < 0) | (x_np >= levels))[0], x_np.shape)
        raise ValueError(f"attack: x{[int(i) for i in bad]} = {x_np[bad]} is outside the levels 0..{levels - 1}.")
    if int(eps) != eps or eps < 0:
        raise ValueError(f"attack: eps must be a whole number of levels >= 0; got {eps!r}.")
    y_np = np.asarray(y)
    if y_np.shape != x_np.shape[:1]:
        raise ValueError(f"attack: expected one label per image, y of shape {x_np.shape[:1]}; got {y_np.shape}.")
    mask = np.ones(x_np.shape, bool) if where is None else np.broadcast_to(np.asarray(where, bool), x_np.shape)
    dtype = _float_dtype()
    return x_np, jnp.asarray(x_np, dtype), jnp.asarray(y_np), jnp.asarray(mask, dtype), levels


def _loss_grad_sign(logits_fn: Callable, x: Array, y: Array) -> Array:
    grad = jax.grad(lambda v: jnp.sum(_cross_entropy(logits_fn(v), y)))(x)
    return jnp.sign(grad)


@eqx.filter_jit
def _fgsm(classifier, x, y, mask, eps, levels):
    step = eps * mask * _loss_grad_sign(classifier.logits, x, y)
    return jnp.clip(x + step, 0, levels - 1)


def fgsm(
    classifier, x: ArrayLike, y: ArrayLike, eps: int, *, where: ArrayLike | None = None, levels: int | None = None
) -> np.ndarray:
    """Fast gradient sign method: ``clip(x + eps * sign(grad_x CE(f(x), y)), 0, L-1)`` on ``where``.

    ``classifier`` is a :class:`Classifier` (or any equinox module with a differentiable
    ``logits(x)`` and ``levels``). Returns integer images of ``x``'s dtype.
    """
    x_np, xs, ys, mask, levels = _attack_inputs(classifier, x, y, eps, where, levels)
    out = _fgsm(classifier, xs, ys, mask, jnp.asarray(eps, xs.dtype), levels)
    return np.rint(np.asarray(out)).astype(x_np.dtype if np.issubdtype(x_np.dtype, np.integer) else np.int64)


@eqx.filter_jit
def _pgd(classifier, x, y, mask, eps, step, key, levels, iterations, random_start):
    lo, hi = jnp.maximum(x - eps, 0), jnp.minimum(x + eps, levels - 1)
    if random_start:
        whole = eps.astype(jnp.int32)
        noise = jax.random.randint(key, x.shape, -whole, whole + 1).astype(x.dtype)
        start = jnp.clip(x + mask * noise, lo, hi)
    else:
        start = x

    def body(_, adv):
        moved = adv + step * mask * _loss_grad_sign(classifier.logits, adv, y)
        return jnp.clip(moved, lo, hi)

    return jax.lax.fori_loop(0, iterations, body, start)


def pgd(
    classifier,
    x: ArrayLike,
    y: ArrayLike,
    eps: int,
    *,
    step: int = 1,
    iterations: int = 10,
    seed: int = 0,
    random_start: bool = True,
    where: ArrayLike | None = None,
    levels: int | None = None,
) -> np.ndarray:
    """Projected gradient descent in L-inf (Madry et al. 2018), in whole levels.

    Start at ``x`` plus uniform integer noise in ``[-eps, eps]`` on ``where`` (``seed``;
    ``random_start=False`` starts at ``x``), then ``iterations`` times
    ``x_adv <- clip(x_adv + step * sign(grad CE), max(x - eps, 0), min(x + eps, L - 1))``.
    Returns the last iterate as integer images of ``x``'s dtype.
    """
    if int(step) != step or step < 1:
        raise ValueError(f"pgd: step must be a whole number of levels >= 1; got {step!r}.")
    x_np, xs, ys, mask, levels = _attack_inputs(classifier, x, y, eps, where, levels)
    key = jax.random.key(seed)
    eps_a, step_a = jnp.asarray(eps, xs.dtype), jnp.asarray(step, xs.dtype)
    out = _pgd(classifier, xs, ys, mask, eps_a, step_a, key, levels, int(iterations), bool(random_start))
    return np.rint(np.asarray(out)).astype(x_np.dtype if np.issubdtype(x_np.dtype, np.integer) else np.int64)
