"""A compiler cache for Verilator's run-time library, used as ``verilated.mk``'s ``OBJCACHE``.

Every Verilator build compiles the same four run-time files (``verilated.cpp``,
``verilated_vpi.cpp``, ``verilated_threads.cpp``, ``verilated_dpi.cpp``) again: 23 s of CPU per
build here, and most of a small design's build. Make runs each compile as
``$(OBJCACHE) $(CXX) ... -c -o verilated.o .../include/verilated.cpp``; with ``OBJCACHE`` set to
``python sim/objcache.py CACHE_DIR``, this script serves a compile of a file from
``$VERILATOR_ROOT/include`` from ``CACHE_DIR`` when the same command has compiled the same source
before, and runs every other compile (the design's own files) unchanged.

The key covers the whole command line (compiler, flags, include paths, so the installation),
the compiler binary's size and time stamp, and the source's and the version header's bytes.
Entries are written to a temporary name and renamed, so concurrent builds (pytest-xdist) never
see half a file; a failure to use the cache falls back to compiling.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCES = (".cpp", ".cc", ".c")


def _runtime_source(args: list[str]) -> Path | None:
    """The single source of a ``-c`` compile when it is a Verilator run-time file."""
    root = os.environ.get("VERILATOR_ROOT")
    if not root or "-c" not in args:
        return None
    srcs = [a for a in args if a.endswith(SOURCES) and not a.startswith("-")]
    if len(srcs) != 1:
        return None
    src = Path(srcs[0]).resolve()
    include = (Path(root) / "include").resolve()
    return src if src.is_relative_to(include) and src.is_file() else None


def _output(args: list[str]) -> Path | None:
    if "-o" in args[:-1]:
        return Path(args[args.index("-o") + 1])
    return None


def cache_key(cxx: str, args: list[str], src: Path) -> str:
    h = hashlib.sha256()
    exe = shutil.which(cxx)
    if exe:
        st = Path(exe).resolve().stat()
        h.update(f"{Path(exe).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update("\0".join([cxx, *args]).encode())
    h.update(src.read_bytes())
    version = src.parent / "verilated_config.h"
    if version.is_file():
        h.update(version.read_bytes())
    return h.hexdigest()[:32]


def _store(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: objcache.py CACHE_DIR COMPILER ARGS...", file=sys.stderr)
        return 2
    cache, cxx, args = Path(argv[0]), argv[1], argv[2:]
    src, out = _runtime_source(args), _output(args)
    if src is None or out is None:
        os.execvp(cxx, [cxx, *args])  # not a run-time file: compile as make asked
    dep = out.with_suffix(".d")
    try:
        key = cache_key(cxx, args, src)
        hit_o, hit_d = cache / f"{key}.o", cache / f"{key}.d"
        if hit_o.is_file():
            _store(hit_o, out)
            if hit_d.is_file():
                _store(hit_d, dep)
            return 0
    except OSError:
        key = None
    rc = subprocess.call([cxx, *args])
    if rc == 0 and key is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            _store(out, cache / f"{key}.o")
            if dep.is_file():
                _store(dep, cache / f"{key}.d")
        except OSError:
            pass  # the object is built; only the cache entry is missing
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
