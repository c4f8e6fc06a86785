"""Frozen config dataclasses and strict overrides: a misspelt key fails with the valid ones."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, TypeVar

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
