"""Turning a request's body, query string and headers into plain, checked Python values.

Everything here refuses bad input with a 4xx ``ApiError``; nothing a client sends can get past
it as an unexpected exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping

from aiohttp import hdrs, web

from raft3d.api import headers
from raft3d.api.errors import BadRequest, UndecodableBody, UnsupportedMediaType

MAX_IDEMPOTENCY_KEY_CHARS = 256
# Log indexes and counts fit a signed 64-bit integer (SQLite's); anything longer is refused
# before it is converted, so a huge literal costs nothing.
MAX_QUERY_INT = 2**63 - 1
_DECIMAL = re.compile(r"[0-9]{1,19}")


def _refuse_constant(name: str) -> object:
    # json accepts NaN and Infinity by default; they are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _is_json_media_type(mime: str) -> bool:
    main, _, sub = mime.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


# Content-Type values as clients send them, which the check below accepts: taken as they
# are, without parsing the header into its parameters (a cost on every write).
PLAIN_JSON_TYPES = frozenset(
    {
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=utf-8",
        "application/json; charset=UTF-8",
        "application/json;charset=UTF-8",
    }
)


def _check_content_type(request: web.Request) -> None:
    given = request.headers.get(hdrs.CONTENT_TYPE)
    if given is None:
        return  # tolerated: the body must still parse as JSON
    if given in PLAIN_JSON_TYPES:
        return
    if not _is_json_media_type(request.content_type):
        raise UnsupportedMediaType(
            "unsupported_media_type",
            f"expected a JSON body (application/json), got {request.content_type!r}",
            {"content_type": request.headers[hdrs.CONTENT_TYPE]},
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            "unsupported_media_type", f"JSON bodies must be UTF-8, got charset {charset!r}"
        )


# One decoder for every request: ``json.loads`` with these options would build a new one
# per call.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


def parse_json(raw: bytes) -> object:
    """Decode strict JSON: UTF-8, no NaN/Infinity, no duplicate keys."""
    try:
        text = raw.decode("utf-8")
        return _STRICT_DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "invalid_json", "the body is not valid UTF-8", {"reason": str(exc)}
        ) from None
    except ValueError as exc:  # also JSONDecodeError and over-long integer literals
        raise BadRequest(
            "invalid_json", "the body is not valid JSON", {"reason": str(exc)}
        ) from None
    except RecursionError:
        raise BadRequest("invalid_json", "the body is nested too deeply") from None


async def read_json_object(request: web.Request, *, required: bool) -> dict[str, object] | None:
    """The request body as a JSON object, or None when the body is empty and not required.

    Raises 413 (via aiohttp) beyond the app's ``client_max_size``.
    """
    try:
        raw = await request.read()
    except web.RequestPayloadError as exc:
        # E.g. "Content-Encoding: gzip" on bytes that are not gzip: aiohttp fails the read.
        raise UndecodableBody(
            "invalid_json", "the body could not be decoded", {"reason": _first_line(exc)}
        ) from None
    if not raw.strip():
        if required:
            raise BadRequest("invalid_json", "a JSON object body is required")
        return None
    _check_content_type(request)
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest(
            "invalid_json",
            f"the body must be a JSON object, not {_json_kind(body)}",
        )
    return body


def _first_line(exc: Exception) -> str:
    # aiohttp's payload errors read "400, message:\n  <what went wrong>".
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def query_params(request: web.Request, allowed: Collection[str]) -> Mapping[str, str]:
    """The query string as single values; unknown or repeated parameters are refused."""
    if "?" not in request.raw_path:
        return {}  # no query string (parsing one costs a write's path more than this check)
    found: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for name, value in request.query.items():
        if name not in allowed:
            errors.setdefault(name, []).append("Unknown query parameter.")
        elif name in found:
            errors.setdefault(name, []).append("Given more than once.")
        else:
            found[name] = value
    if errors:
        raise BadRequest("invalid_query", "the query string is not valid", errors)
    return found


def idempotency_key(request: web.Request) -> str | None:
    """The optional ``Idempotency-Key`` header: 1..256 printable ASCII characters."""
    values = request.headers.getall(headers.IDEMPOTENCY_KEY, [])
    if not values:
        return None
    key = values[0]
    problem = None
    if len(values) > 1:
        problem = "given more than once"
    elif not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        problem = f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"
    elif not all(" " <= ch <= "~" for ch in key):
        problem = "must be printable ASCII"
    if problem is not None:
        raise BadRequest(
            "invalid_header",
            f"the {headers.IDEMPOTENCY_KEY} header {problem}",
            {headers.IDEMPOTENCY_KEY: [problem]},
        )
    return key


def ascii_decimal(raw: str) -> int | None:
    """``raw`` as an integer when it is 1 to 19 ASCII digits (fits int64), else None.

    Stricter than ``int()``, which also takes signs, spaces, underscores and other scripts'
    digits, and raises on very long literals.
    """
    return int(raw) if _DECIMAL.fullmatch(raw) else None


def int_param(
    params: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int
) -> int:
    """An optional decimal integer query parameter within ``[minimum, maximum]``.

    Only ASCII digits are accepted (see ``ascii_decimal``).
    """
    raw = params.get(name)
    if raw is None:
        return default
    value = ascii_decimal(raw)
    if value is None or not minimum <= value <= min(maximum, MAX_QUERY_INT):
        raise BadRequest(
            "invalid_query",
            "the query string is not valid",
            {name: [f"Must be an integer between {minimum} and {maximum}."]},
        )
    return value
