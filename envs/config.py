"""Frozen config dataclasses: strict overrides (a misspelt key fails with the valid ones) and the
field checks every config's ``validate`` runs (a wrong type or range fails naming the field)."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

C = TypeVar("C")


def apply_overrides(cfg: C, overrides: Mapping[str, Any], where: str = "config") -> C:
    """A copy of the frozen dataclass ``cfg`` with ``overrides`` applied.

    Nested dataclass fields take a mapping (merged key by key) or an instance. Tuples given as
    lists are converted. Unknown keys raise ``ValueError`` naming the valid ones.
    """
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {unknown}; valid keys: {sorted(fields)}")
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = apply_overrides(current, value, where=f"{where}.{key}")
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(cfg, **changes)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-ready data."""
    return dataclasses.asdict(cfg)


def parse_overrides(text: str) -> dict[str, Any]:
    """The env config fields a script's ``--env-overrides`` names, as a dict (a ``ValueError`` for
    anything but a JSON object; the env itself rejects unknown fields)."""
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"must be a JSON object, e.g. '{{\"memory_seconds\": 5}}': {e}") from None
    if not isinstance(extra, dict):
        raise ValueError(f"must be a JSON object of env config fields, got {text!r}")
    return extra


# -- field checks, for each config's ``validate`` ---------------------------------------------------
# Every check names the field and what it accepts. Numbers must be real Python or numpy numbers
# (never bool, str or None); they are all that ever reaches an MJCF file, formatted by ``number``.


def integer(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int, refusing anything but an integer (not a bool, float or str) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"{lo} to {hi}" if lo is not None and hi is not None else (f">= {lo}" if lo is not None else f"<= {hi}")
        raise ValueError(f"{name} must be an integer {span}, got {value}")
    return value


def number(name: str, value: Any, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> float:
    """``value`` as a finite float, refusing anything but a real number (not a bool or str) in
    [lo, hi] (``open_lo``: lo itself refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    too_low = lo is not None and (value <= lo if open_lo else value < lo)
    if too_low or (hi is not None and value > hi):
        low = "" if lo is None else f"{'>' if open_lo else '>='} {lo}"
        high = "" if hi is None else f"<= {hi}"
        raise ValueError(f"{name} must be a number {' and '.join(s for s in (low, high) if s)}, got {value}")
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool (True or False, nothing else)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
    return bool(value)


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def pair(name: str, value: Any) -> tuple[Any, Any]:
    """``value`` if it is a tuple (or list) of exactly two items."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (a, b), got {value!r}")
    return value[0], value[1]


def choices(name: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``value`` if it is a tuple (or list) of strings among ``allowed``."""
    if not isinstance(value, (tuple, list)):
        raise ValueError(f"{name} must be a tuple of names among {allowed}, got {value!r}")
    bad = [v for v in value if not isinstance(v, str) or v not in allowed]
    if bad:
        raise ValueError(f"{name} must be among {allowed}, got {bad}")
    return tuple(value)


def scales(name: str, value: Any, kind: type) -> None:
    """``value`` if it is a ``kind`` dataclass of finite numbers (reward scales: any sign)."""
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a {kind.__name__} (or a mapping of its fields), got {value!r}")
    for f in dataclasses.fields(value):
        number(f"{name}.{f.name}", getattr(value, f.name))
