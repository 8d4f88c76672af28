"""Detection pictures as PNG files: score histograms, ROC curves, surprisal maps.

Like :mod:`arprob.plotting`: matplotlib (the optional ``plot`` extra, ``pip install
'arprob[plot]'``) is imported inside each function, figures are drawn on a bare ``Figure``
with the Agg canvas (no pyplot state, no display needed), rendered into memory and written
with :func:`arprob.fileio.atomic_write_bytes`, so a reader never sees half a PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import ArrayLike

from ..fileio import atomic_write_bytes
from ..plotting import _require_matplotlib
from .metrics import auroc, roc_curve

__all__ = ["plot_roc", "plot_score_histograms", "plot_surprisal_maps"]


def _named(out_scores: ArrayLike | Mapping[str, ArrayLike], default: str) -> dict[str, np.ndarray]:
    if isinstance(out_scores, Mapping):
        if not out_scores:
            raise ValueError("out_scores: expected at least one named set of scores; got an empty mapping.")
        return {str(k): np.asarray(v, np.float64).reshape(-1) for k, v in out_scores.items()}
    return {default: np.asarray(out_scores, np.float64).reshape(-1)}


def _figure(figsize: tuple[float, float]):
    """A bare Agg figure (no pyplot): matplotlib imported here, with the install hint when missing."""
    Figure, Canvas = _require_matplotlib()
    fig = Figure(figsize=figsize, dpi=100)
    Canvas(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def plot_score_histograms(
    in_scores: ArrayLike,
    out_scores: ArrayLike | Mapping[str, ArrayLike],
    path: str | os.PathLike,
    *,
    bins: int = 40,
    threshold: float | Sequence[float] | None = None,
    xlabel: str = "score (higher = more anomalous)",
    title: str | None = None,
    show_auroc: bool = True,
    in_label: str = "in-distribution",
) -> None:
    """Overlaid density histograms of in-distribution and out-of-distribution scores (PNG).

    ``out_scores`` is one array or a mapping ``name -> scores`` (one histogram each, the
    AUROC against ``in_scores`` in the legend when ``show_auroc``: only meaningful when the
    named sets are known to be out of distribution); all share the bin edges.
    ``threshold`` draws the decision line, or both lines of a two-sided test (a pair).
    """
    s_in = np.asarray(in_scores, np.float64).reshape(-1)
    outs = _named(out_scores, "out-of-distribution")
    pooled = np.concatenate([s_in, *outs.values()])
    pooled = pooled[np.isfinite(pooled)]
    edges = np.histogram_bin_edges(pooled, bins=bins) if pooled.size else bins
    fig = _figure((7, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(s_in[np.isfinite(s_in)], bins=edges, density=True, alpha=0.5, color="0.45", label=in_label)
    for name, s in outs.items():
        ok = show_auroc and s.size and s_in.size and np.all(np.isfinite(s))
        label = f"{name} (AUROC {auroc(s_in, s):.3f})" if ok else name
        ax.hist(s[np.isfinite(s)], bins=edges, density=True, alpha=0.45, histtype="stepfilled", label=label)
    lines = [] if threshold is None else [threshold] if np.ndim(threshold) == 0 else list(threshold)
    for i, t in enumerate(lines):
        name = "threshold" if len(lines) == 1 else ("lower threshold", "upper threshold")[min(i, 1)]
        ax.axvline(float(t), color="k", linestyle="--" if i == len(lines) - 1 else ":", linewidth=1,
                   label=f"{name} {float(t):.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title or "Scores: in- vs out-of-distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_roc(
    in_scores: ArrayLike,
    out_scores: ArrayLike | Mapping[str, ArrayLike],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> None:
    """ROC curves (true- vs false-positive rate, outliers positive), one per named set, AUROC in the legend."""
    outs = _named(out_scores, "out-of-distribution")
    fig = _figure((5, 5))
    ax = fig.add_subplot(1, 1, 1)
    for name, s in outs.items():
        fpr, tpr, _ = roc_curve(in_scores, s)
        ax.step(fpr, tpr, where="post", label=f"{name} (AUROC {auroc(in_scores, s):.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title or "ROC")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_surprisal_maps(
    surprisal: ArrayLike,
    path: str | os.PathLike,
    *,
    images: ArrayLike | None = None,
    titles: Sequence[str] | None = None,
    max_images: int = 16,
    title: str | None = None,
    levels: int | None = None,
    unit: str = "bits",
) -> None:
    """Per-pixel surprisal ``-log2 p(x_e | x_<e)`` in bits as heat maps, one panel per image (PNG).

    ``surprisal`` is ``(n, H, W)`` or ``(H, W)`` (an image variable's slice of the per-element
    bits, reshaped; a trailing channel axis is summed). With ``images`` of the same shape the
    images are drawn in a row above their maps. All maps share one colour scale, so the
    costliest pixels stand out across panels; at most ``max_images`` are drawn. Images are
    drawn in grey with 0 black and ``levels - 1`` white (the variable's range, the same
    scale in every panel; default: the largest value drawn). ``unit="nats"`` shows the
    surprisal in nats (``bits x ln 2``), the unit of ``arprob score``'s CSV.
    """
    if unit not in ("bits", "nats"):
        raise ValueError(f"unit: expected 'bits' or 'nats'; got {unit!r}.")
    bits = np.asarray(surprisal, np.float64) * (np.log(2.0) if unit == "nats" else 1.0)
    if bits.ndim == 2:
        bits = bits[None]
    if bits.ndim == 4:
        bits = bits.sum(axis=-1)
    if bits.ndim != 3:
        raise ValueError(f"surprisal: expected (n, H, W), (H, W) or (n, H, W, C); got shape {np.shape(surprisal)}.")
    n = min(bits.shape[0], int(max_images))
    imgs = None
    if images is not None:
        imgs = np.asarray(images, np.float64)
        imgs = imgs[None] if imgs.ndim == 2 else imgs
        if imgs.shape[:3] != bits.shape[:3] or imgs.ndim not in (3, 4):
            raise ValueError(f"images: expected shape {bits.shape} (or with a channel axis); got {np.shape(images)}.")
        top = float(levels - 1) if levels is not None else max(float(np.nanmax(imgs)), 1e-12)
        if imgs.ndim == 4:  # channels: one channel drawn grey, three or four as colour scaled to [0, 1]
            imgs = imgs[..., 0] if imgs.shape[-1] == 1 else np.clip(imgs / max(top, 1e-12), 0, 1)
    rows = 2 if imgs is not None else 1
    fig = _figure((1.6 * n + 1.2, 1.7 * rows + 0.5))
    vmax = float(np.nanmax(bits[:n])) if np.isfinite(np.nanmax(bits[:n])) else 1.0
    mappable = None
    for i in range(n):
        if imgs is not None:
            ax = fig.add_subplot(rows, n, i + 1)
            ax.imshow(imgs[i], cmap="gray", vmin=0.0, vmax=max(top, 1e-12), interpolation="nearest")
            ax.set_axis_off()
            if titles is not None and i < len(titles):
                ax.set_title(str(titles[i]), fontsize=7)
        ax = fig.add_subplot(rows, n, (rows - 1) * n + i + 1)
        mappable = ax.imshow(bits[i], cmap="magma", vmin=0.0, vmax=max(vmax, 1e-9), interpolation="nearest")
        ax.set_axis_off()
        label = f"{bits[i].sum():.1f} {unit}"
        if imgs is None and titles is not None and i < len(titles):
            label = f"{titles[i]}: {label}"
        ax.set_title(label, fontsize=7)
    if mappable is not None:
        fig.colorbar(mappable, ax=fig.axes, shrink=0.8, label=unit)
    fig.suptitle(title or f"Surprisal per pixel ({unit})", fontsize=9)
    _save(fig, path)
