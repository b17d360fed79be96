"""Figure helpers; matplotlib is imported here only, and only when a figure is made."""

from __future__ import annotations

from pathlib import Path

__all__ = ["pyplot", "save", "unlabelled_axes"]


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


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG at ``path`` and close it; returns ``path``. Every visible panel
    must have both axis labels (a ``ValueError`` names the ones that do not)."""
    missing = unlabelled_axes(fig)
    if missing:
        pyplot().close(fig)
        raise ValueError(f"{Path(path).name}: axes without labels in {missing}")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
