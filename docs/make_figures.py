"""Draw the step maps of docs/concepts.md: the step of every pixel of an 8x8 image under
several orderings and one block partition, one small PNG each in docs/img/.

Run from the repository root: ``python docs/make_figures.py`` (needs matplotlib:
``pip install -e ".[plot]"``). The maps come from ``ar.compute_steps``, the one place an
ordering and a partition meet, so a picture shows exactly what the library computes.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

import arprob as ar
from arprob.fileio import atomic_write_bytes

IMAGE = ar.Binary("img", shape=(8, 8))

#: file stem -> (title, ordering, partition)
FIGURES = {
    "steps_raster": ("Raster()", ar.Raster(), ar.Singletons()),
    "steps_snake": ("Snake() / Zigzag()", ar.Snake(), ar.Singletons()),
    "steps_columns": ("Columns()", ar.Columns(), ar.Singletons()),
    "steps_evenodd": ("EvenOdd()", ar.EvenOdd(), ar.Singletons()),
    "steps_random": ("RandomOrder(0)", ar.RandomOrder(0), ar.Singletons()),
    "steps_fixedsize": ("Snake() + FixedSize(4)", ar.Snake(), ar.FixedSize(4)),
}


def step_map(ordering, partition) -> np.ndarray:
    """``(8, 8)`` int: the step of each pixel of the 8x8 image."""
    return ar.compute_steps((IMAGE,), ordering, partition).step.reshape(IMAGE.shape)


def draw(title: str, steps: np.ndarray) -> bytes:
    """One step map as PNG bytes: colour and number = the pixel's step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.6, 2.8), dpi=80)
    ax.imshow(steps, cmap="viridis", vmin=0, vmax=steps.max())
    for (r, c), s in np.ndenumerate(steps):
        colour = "white" if s < 0.6 * steps.max() else "black"
        ax.text(c, r, str(s), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for stem, (title, ordering, partition) in FIGURES.items():
        png = draw(title, step_map(ordering, partition))
        atomic_write_bytes(out / f"{stem}.png", png)
        print(f"{out / stem}.png  {len(png) / 1024:.1f} kB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    main(parser.parse_args().out)
