"""Formations: where each placed box goes, in the anchor's frame (x forward, y left, metres)."""

from __future__ import annotations

from envs.egopush.scene import BOX_HALF

SPACING = 2 * BOX_HALF + 0.06  # centre to centre: boxes side by side with a 6 cm gap

TASKS = ("goal", "line", "cross")


def target_offsets(task: str, n_placed: int) -> list[tuple[float, float]]:
    """Offsets of the ``n_placed`` placed boxes' targets from the anchor, in placement order.

    ``goal``: the box's centre on the marked region's centre. ``line``: boxes in a row beside
    the anchor along its +y side. ``cross``: boxes on the anchor's four sides (+x, +y, -x, -y).
    """
    if task == "goal":
        return [(0.0, 0.0)] * n_placed
    if task == "line":
        return [(0.0, SPACING * (k + 1)) for k in range(n_placed)]
    if task == "cross":
        sides = [(SPACING, 0.0), (0.0, SPACING), (-SPACING, 0.0), (0.0, -SPACING)]
        if n_placed > len(sides):
            raise ValueError(f"cross places at most {len(sides)} boxes, got {n_placed}")
        return sides[:n_placed]
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")
