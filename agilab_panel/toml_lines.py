"""Where a key sits in TOML text, so an error about a value can name the line the user must fix.

Parsers give positions only for syntax errors; a value of the wrong type or a table that is not a
table parses fine, and only a scan of the text finds its line again.
"""
from __future__ import annotations

import json
import re

__all__ = ["decode_error_line", "line_of"]

_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _key(text: str) -> tuple[str, ...]:
    parts = re.findall(_PART, text)
    out = []
    for part in parts:
        if part.startswith('"'):
            try:
                part = json.loads(part)
            except ValueError:
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        out.append(part)
    return tuple(out)


def line_of(text: str, keys: tuple[str, ...]) -> int | None:
    """1-based line where ``keys`` (a table or a key path) is written; else that of its nearest written parent."""
    best: tuple[int, int] | None = None  # (matched length, line)
    table: tuple[str, ...] = ()
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        header = _HEADER.match(line)
        if header:
            table = _key(header.group(1))
            path = table
        else:
            assign = _ASSIGN.match(line)
            if not assign:
                continue
            path = table + _key(assign.group(1))
            in_string = quotes % 2 == 1
        if path == keys[: len(path)] and (best is None or len(path) > best[0]):
            best = (len(path), number)
            if path == keys:
                return number
    return best[1] if best else None


def decode_error_line(message: str) -> int | None:
    """The line in a :mod:`tomllib` error message (``... (at line 3, column 7)``)."""
    match = _AT_LINE.search(message)
    return int(match.group(1)) if match else None
