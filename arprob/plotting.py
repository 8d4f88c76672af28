"""Training curves as PNG files (matplotlib, the optional ``plot`` extra).

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
backend change, safe in threads and on machines without a display), rendered into memory
and written with ``atomic_write_bytes``: a reader never sees half a PNG.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence

from .fileio import atomic_write_bytes


def _require_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib, which is optional: pip install 'arprob[plot]' (or pip install matplotlib)."
        ) from err
    return Figure, FigureCanvasAgg


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike, *, title: str | None = None) -> None:
    """Write the training curve of a ``fit`` history to ``path`` (PNG, atomically).

    Plots the per-step training loss (raw and a running mean) in nats/example and, when
    present, the validation NLL at each evaluation and the best step (early stopping).
    """
    Figure, FigureCanvasAgg = _require_matplotlib()
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps, loss = list(history.get("step", [])), list(history.get("loss", []))
    if loss:
        ax.plot(steps, loss, color="tab:blue", alpha=0.3, linewidth=0.8, label="train loss")
        window = max(1, len(loss) // 50)
        if window > 1:
            ax.plot(steps, _smooth(loss, window), color="tab:blue", linewidth=1.5, label=f"train (mean of {window})")
    if history.get("val_nll"):
        ax.plot(history["eval_step"], history["val_nll"], "o-", color="tab:orange", markersize=3, label="validation NLL")
        best = getattr(history, "best_step", None)
        if best is not None:
            ax.axvline(best, color="tab:orange", linestyle=":", linewidth=1, label=f"best (step {best})")
    finite = [v for v in loss + list(history.get("val_nll", [])) if math.isfinite(v)]
    if finite:
        lo, hi = min(finite), sorted(finite)[int(0.98 * (len(finite) - 1))]
        pad = 0.05 * max(hi - lo, 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("step")
    ax.set_ylabel("NLL (nats / example)")
    ax.grid(alpha=0.3)
    if loss or history.get("val_nll"):
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "arprob fit")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
