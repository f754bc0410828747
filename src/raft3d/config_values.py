"""How the tables of a node file become settings: each value type- and range-checked
against the frozen dataclass of its section (ranges declared beside the fields with
``bounded``), then the section's own ``check()`` for the relations between values. Every
refusal is a ``ConfigError`` that names the setting. ``raft3d.config`` builds on these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import field, fields, replace
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration is missing, malformed or inconsistent."""


def bounded(default: T, low: float | None = None, high: float | None = None) -> T:
    """A settings field whose value must lie in ``[low, high]`` (checked at load)."""
    return field(default=default, metadata={"low": low, "high": high})


class _Section(Protocol):
    def check(self) -> None: ...


S = TypeVar("S", bound=_Section)


def read_section(cls: type[S], raw: Mapping[str, Any], name: str) -> S:
    """One optional ``[name]`` table as ``cls``: each value type- and range-checked, then the
    section's own ``check()`` for the relations between values."""
    section = _dataclass_from(cls, raw.get(name, {}), name)
    section.check()
    return section


def read_table(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"missing [{name}] table")
    return value


def read_string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty string")
    return value


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _dataclass_from(cls: type[T], raw: object, where: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"unknown setting {where}.{key}")
        name = f"{where}.{key}"
        default = getattr(cls(), key)
        if type(value) is not type(default) and not (
            isinstance(default, float) and type(value) is int
        ):
            raise ConfigError(f"{name} must be {_type_name(default)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        _check_range(name, value, known[key].metadata)
        values[key] = float(value) if isinstance(default, float) else value
    return replace(cls(), **values)  # type: ignore[type-var]


def _check_range(name: str, value: object, metadata: Mapping[str, Any]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high = metadata.get("low"), metadata.get("high")
    if low is not None and high is not None and not low <= value <= high:
        raise ConfigError(f"{name} must be between {low!r} and {high!r}, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be at least {low!r}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be at most {high!r}, got {value!r}")
