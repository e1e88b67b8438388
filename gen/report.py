"""How every reporting command prints: exactly one JSON object with ``--json``, else text."""

from __future__ import annotations

import json
from collections.abc import Callable


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``1 image``, ``2 images``, ``0 mismatches`` (``many`` where adding an s is wrong): a
    count with its noun, for the commands' words."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"


def emit(obj: dict, as_json: bool, human: Callable[[], None] | None = None) -> None:
    """Print ``obj`` as one JSON object, or call ``human`` (default: aligned ``key value`` lines)."""
    if as_json:
        print(json.dumps(obj, sort_keys=True))
    elif human is not None:
        human()
    else:
        width = max((len(k) for k in obj), default=0) + 2
        for k, v in obj.items():
            print(f"{k:{width}s}{_plain(v)}")


def _plain(v, inner: bool = False) -> str:
    """A value as a person reads it: ``a 1, b 2`` for a dict, ``x, y`` for a list (in
    parentheses inside another), ``-`` for an empty one, not Python's repr."""
    if isinstance(v, dict):
        text = ", ".join(f"{k} {_plain(x, True)}" for k, x in v.items())
    elif isinstance(v, (list, tuple)):
        text = ", ".join(_plain(x, True) for x in v)
    else:
        return str(v)
    return "-" if not text else f"({text})" if inner else text
