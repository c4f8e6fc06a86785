"""Import Warp and MuJoCo Warp once, quietly: no banner, no per-kernel load messages, and no CUDA
driver warning on a machine that has no NVIDIA driver (the CPU device is all it needs)."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable

# Printed by Warp's native library (to the process's stderr, past Python's sys.stderr) when it
# finds no libcuda: on a CPU machine that is expected, not a fault.
NO_DRIVER = "Could not find or load the NVIDIA CUDA driver"


def quiet_init(init: Callable[[], object]) -> None:
    """Run ``init`` with file descriptor 2 captured, then pass on what it wrote there except the line
    saying that no CUDA driver was found (other warnings and errors still reach stderr)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        init()
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            init()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if NO_DRIVER not in line)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


@functools.cache
def warp_modules():  # noqa: ANN201 - Warp is imported only where it is used
    """(warp, mujoco_warp), initialised; Warp's kernel cache makes later runs start fast."""
    import warp as wp

    wp.config.quiet = True
    wp.config.log_level = wp.LOG_WARNING
    quiet_init(wp.init)
    import mujoco_warp as mjw

    return wp, mjw
