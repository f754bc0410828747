"""Structured logging: ``key=value`` lines on the console, optional JSON lines in a file.

Log calls elsewhere use ordinary %-style messages whose words are already ``key=value``
pairs (``"role changed node=%s term=%d"``); the console formatter prefixes time, level and
logger, the JSON formatter adds the same fields as JSON keys and parses the pairs out of the
message so they can be queried.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

_PAIR = re.compile(r"(\w+)=(\S+)")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
            f"logger={record.name} msg={_quote(record.getMessage())}"
        )
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        doc: dict[str, object] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": message,
        }
        for key, value in _PAIR.findall(message):
            doc.setdefault(key, _number(value))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


def _quote(text: str) -> str:
    return json.dumps(text) if (" " in text or '"' in text or "\n" in text) else text


def _number(value: str) -> object:
    try:
        return int(value)
    except ValueError:
        return value


def configure_logging(
    console_level: str = "INFO", log_file: Path | None = None, file_level: str = "DEBUG"
) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level.upper())
    console.setFormatter(KeyValueFormatter())
    root.addHandler(console)
    levels = [console.level]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(file_level.upper())
        to_file.setFormatter(JsonLinesFormatter())
        root.addHandler(to_file)
        levels.append(to_file.level)
    root.setLevel(min(levels))
    # aiohttp's access log is noisy at thousands of requests per second; keep it at WARNING.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
