"""Import Warp and MuJoCo Warp once, quietly: no banner, no per-kernel load messages."""

from __future__ import annotations

import functools


@functools.cache
def warp_modules():  # noqa: ANN201 - Warp is imported only where it is used
    """(warp, mujoco_warp), initialised; Warp's kernel cache makes later runs start fast."""
    import warp as wp

    wp.config.quiet = True
    wp.config.log_level = wp.LOG_WARNING
    wp.init()
    import mujoco_warp as mjw

    return wp, mjw
