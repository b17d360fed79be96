"""Figure helpers; matplotlib is imported here only, and only when a figure is made."""

from __future__ import annotations

from pathlib import Path

__all__ = ["pyplot", "save", "unlabelled_axes", "clipped_text"]


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend (safe without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def unlabelled_axes(fig) -> list[str]:
    """The visible panels of ``fig`` missing an x or y axis label (colour bars, which carry
    their label on one axis, need only that one), named by title or position."""
    missing = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        is_colorbar = hasattr(ax, "_colorbar")
        labels = (ax.get_xlabel(), ax.get_ylabel())
        if (is_colorbar and not any(labels)) or (not is_colorbar and not all(labels)):
            missing.append(ax.get_title() or f"panel {i}")
    return missing


def clipped_text(fig) -> list[str]:
    """Titles, axis labels and the figure title of ``fig`` that reach past its edges (a
    title wider than its figure, say), as drawn now."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    suptitle = getattr(fig, "_suptitle", None)  # matplotlib keeps the artist here only
    texts = [suptitle] if suptitle is not None else []
    for ax in fig.axes:
        if ax.get_visible():
            texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    clipped = []
    for text in texts:
        if not text.get_visible() or not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            clipped.append(text.get_text())
    return clipped


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG at ``path`` and close it; returns ``path``. Every visible panel
    must have both axis labels, and no title or label may run off the figure (a
    ``ValueError`` names them)."""
    missing = unlabelled_axes(fig)
    if missing:
        pyplot().close(fig)
        raise ValueError(f"{Path(path).name}: axes without labels in {missing}")
    fig.tight_layout()
    clipped = clipped_text(fig)
    if clipped:
        pyplot().close(fig)
        raise ValueError(f"{Path(path).name}: text runs off the figure: {clipped} (shorten "
                         "it, break the line, or widen the figure)")
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
