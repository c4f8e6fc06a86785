"""Files that are either whole or absent: written under a temporary name, then renamed; and a block
that Ctrl-C and SIGTERM wait for, so that what it writes is whole."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, atomically."""
    write_atomic(path, json.dumps(obj, indent=2).encode())


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Within the block, Ctrl-C and SIGTERM wait: each is recorded and, after the block, delivered
    to the handler that was there before, so what the block writes (a checkpoint, a shard and the
    manifest that lists it) is whole. Python's handlers are swapped, not the signal mask: torch's
    threads would take a masked signal for the main one. Outside the main thread it holds nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives Python's signals
        return
    held: list[int] = []
    wanted = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) not in (None, signal.SIG_IGN)]
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in held:
            signal.raise_signal(s)
