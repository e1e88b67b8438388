"""Output files written whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_whole(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; when the block ends without an error it
    replaces ``path`` in one rename, and otherwise it is removed: ``path`` is either the new
    file or left as it was, and nothing half-written stays behind."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
