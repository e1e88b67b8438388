"""How every reporting command prints: exactly one JSON object with ``--json``, else text."""

from __future__ import annotations

import json
from collections.abc import Callable


def plural(n: int, noun: str) -> str:
    """``1 image``, ``2 images``: a count with its noun, for the commands' words."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def emit(obj: dict, as_json: bool, human: Callable[[], None] | None = None) -> None:
    """Print ``obj`` as one JSON object, or call ``human`` (default: aligned ``key value`` lines)."""
    if as_json:
        print(json.dumps(obj, sort_keys=True))
    elif human is not None:
        human()
    else:
        width = max((len(k) for k in obj), default=0) + 2
        for k, v in obj.items():
            print(f"{k:{width}s}{v}")
