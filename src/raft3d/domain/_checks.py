"""Runtime type checks for values that cross a trust boundary (decoded bytes, callers).

Each check takes ``object`` so that static typing cannot prove it redundant, and raises
``InvalidCommandError`` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from raft3d.domain.errors import InvalidCommandError

# Commands travel as msgpack: integers within int64 and valid text mean any command encodes.
INT64_MAX = 2**63 - 1

_T = TypeVar("_T")


def check_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidCommandError(f"{name} must be a string, got {type(value).__name__}")
    try:
        # JSON can carry lone surrogates ("\ud800"); msgpack could not encode them.
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidCommandError(f"{name} is not valid Unicode text") from exc
    return value


def check_int(value: object, name: str, *, minimum: int, maximum: int = INT64_MAX) -> int:
    # bool is a subclass of int; True must not pass for 1.
    if type(value) is not int:
        raise InvalidCommandError(f"{name} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise InvalidCommandError(f"{name} must be in [{minimum}, {maximum}], got {value}")
    return value


def check_instance(value: object, cls: type[_T], name: str) -> _T:
    if not isinstance(value, cls):
        raise InvalidCommandError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
    return value


def check_str_keyed_dict(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise InvalidCommandError(f"{name} must be a map with string keys")
    return value
