"""Limits of configuration data, checked on the parsed tree before any validation.

A config file (or an imported one) that would be accepted and then fail later, or
exhaust the hub while it is read, is refused at once with ``file: field: reason``:

* nesting deeper than :data:`MAX_DEPTH` levels;
* YAML aliases that expand to more than :data:`MAX_VALUES` values ("billion laughs"),
  or refer to themselves;
* a zone or line of more than :data:`MAX_POINTS` points;
* NaN or infinite numbers;
* control characters (NUL ...) in any text, CR/LF in names, ids, keys and header values;
* a text longer than :data:`MAX_TEXT` characters.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 32
MAX_VALUES = 1_000_000
MAX_POINTS = 10_000
MAX_TEXT = 64 * 1024

#: C0 controls (and DEL) refused in every text; tab, LF and CR are allowed in free
#: text (a template, a note), not in the single-line fields below.
_CONTROLS = {chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)}
_SINGLE_LINE_KEYS = {"id", "name", "url", "username", "password", "secret", "token", "topic"}


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _text_problem(text: str, single_line: bool) -> str | None:
    bad = next((ch for ch in text if ch in _CONTROLS), None)
    if bad is not None:
        return f"control character U+{ord(bad):04X} not allowed"
    if single_line and ("\r" in text or "\n" in text):
        return "line breaks (CR/LF) not allowed here"
    if len(text) > MAX_TEXT:
        return f"text of {len(text)} characters, at most {MAX_TEXT}"
    return None


def limit_problems(data: Any) -> list[tuple[str, str]]:
    """(field path, reason) of every limit ``data`` exceeds; empty when it is fine."""
    problems: list[tuple[str, str]] = []
    sizes: dict[int, int] = {}  # expanded size of each container (aliases share objects)
    open_nodes: set[int] = set()

    def walk(node: Any, path: str, depth: int, single_line: bool) -> int:
        if isinstance(node, str):
            reason = _text_problem(node, single_line)
            if reason:
                problems.append((path or "(top level)", reason))
            return 1
        if isinstance(node, float) and not math.isfinite(node):
            problems.append((path, "not a finite number (NaN or infinity)"))
            return 1
        if not isinstance(node, dict | list):
            return 1
        if depth >= MAX_DEPTH:
            problems.append((path, f"nested deeper than {MAX_DEPTH} levels"))
            return 1
        key = id(node)
        if key in open_nodes:
            problems.append((path, "refers to itself (a YAML alias inside its own anchor)"))
            return 1
        if key in sizes:
            return sizes[key]
        open_nodes.add(key)
        total = 1
        if isinstance(node, list):
            if path.endswith("points") and len(node) > MAX_POINTS:
                problems.append((path, f"{len(node)} points, at most {MAX_POINTS}"))
            for i, value in enumerate(node):
                total += walk(value, _join(path, i), depth + 1, single_line)
                if total > MAX_VALUES:
                    break
        else:
            headers = path.endswith("headers")
            for k, value in node.items():
                child = _join(path, k)
                if isinstance(k, str):
                    reason = _text_problem(k, True)
                    if reason:
                        problems.append((child, f"key: {reason}"))
                one_line = headers or single_line or k in _SINGLE_LINE_KEYS
                total += walk(value, child, depth + 1, one_line)
                if total > MAX_VALUES:
                    break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    if walk(data, "", 0, False) > MAX_VALUES:
        problems.append(("(top level)", f"more than {MAX_VALUES} values once YAML aliases are "
                                        "expanded"))  # fmt: skip
    return problems
