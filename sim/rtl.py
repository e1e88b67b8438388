"""Amaranth -> Verilog -> Verilator -> cocotb, cached, for every RTL test and for ``shiftadd sim``.

* :func:`verilog` converts a component to Verilog (one flat file, ports named ``i__payload``...).
* :func:`build` compiles a top under Verilator once per configuration: the build directory is
  ``build/rtl/<name>-<hash>`` (in a checkout; an installed package uses
  ``~/.cache/shiftadd/rtl``; ``SHIFTADD_BUILD`` names another root), the hash covering the
  configuration key, every ``hw/`` source and the tool versions, and a file lock makes
  concurrent pytest-xdist workers share one build instead of corrupting it. Verilator's run-time
  library is compiled once and reused (:mod:`sim.objcache`). Builds use ``--no-public-flat-rw``
  with a ``.vlt`` that exposes only the top module's signals (cocotb's runner always adds
  ``--public-flat-rw``, which made a 16x16 array take 72 s to build and run at 23k cycles/s),
  the wheel's PCH fix, and, for the tests' large arrays (``quick``), without the optimisations
  that gave every PE instance its own C++ (:data:`SHARED_INSTANCE_CODE`).
* :func:`clear_builds` (``shiftadd cache --clear``) deletes the builds no process holds.
* :func:`run` runs one cocotb test module against a build and raises if any test failed, so a
  failing cocotb test fails pytest. The testbench gets its configuration as one JSON blob
  (``SHIFTADD_TB``) and one seed, which also fills every memory with random contents at the
  start (:func:`random_memories`).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hw.convert import to_verilog
from hw.xilinx import SIM_MODELS_FILE, sim_models, uses_primitives, write_sim_models
from sim.tools import check_build_tools, configure_verilator, verilator_env

ROOT = Path(__file__).resolve().parents[1]


def _default_build_root() -> Path:
    """The checkout's ``build/`` (the README's editable install), else the user's cache
    directory: an installed package does not write into site-packages."""
    if (ROOT / "pyproject.toml").is_file():
        return ROOT / "build"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shiftadd"


BUILD_ROOT = Path(os.environ.get("SHIFTADD_BUILD") or _default_build_root()) / "rtl"
TOP = "top"


class RTLTestFailure(AssertionError):
    """A cocotb test failed (its log is in the build directory)."""


def verilog(component, name: str = TOP) -> str:
    return to_verilog(component, name)  # wiring.Component: the signature defines the ports


LINT_WAIVERS = ROOT / "hw" / "lint_waivers.vlt"
def lint(verilog_file: Path) -> list[str]:
    """``verilator --lint-only -Wall`` with the project's waivers; returns the warning lines.
    A design that instantiates 7-series cells is linted together with their models."""
    import subprocess
    import tempfile

    files = [str(LINT_WAIVERS), str(verilog_file)]
    text = verilog_file.read_text()
    with tempfile.TemporaryDirectory(prefix="shiftadd-lint-") as tmp:  # nothing beside the file
        if uses_primitives(text):
            models = Path(tmp) / SIM_MODELS_FILE
            models.write_text(sim_models(text))
            files.insert(1, str(models))
        r = subprocess.run(["verilator", "--lint-only", "-Wall", *files],
                           env=verilator_env(), capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("%")]
    if r.returncode != 0 and not lines:
        lines = [f"verilator exited {r.returncode}: {r.stderr.strip()[:500]}"]
    return lines


def top_ports(text: str, top: str = TOP) -> list[str]:
    """Port names of module ``top`` in Amaranth's Verilog (``module top(a, b, ...);``)."""
    import re

    m = re.search(rf"^module {top}\((.*?)\);", text, re.S | re.M)
    if not m:
        raise RuntimeError(f"no module {top} in the generated Verilog")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


# A module instantiated this often is not inlined by Verilator (``no_inline`` in the build's
# .vlt). Inlined, the 256 PEs of a standalone 16x16x8 adder array (one PE module) took Verilator
# 305 s to convert and simulated at 7,555-8,774 cycles/s; not inlined 66 s and 9,264-9,733
# (`benchmarks/rtl_speed.py`, 2026-12-02). The engines' builds and speeds do not change (digits at
# 9x16x16: 81 s, 26.3-29.0 images/s, against 85 s and 27.1-28.5 inlined, the same hour).
NO_INLINE_INSTANCES = 16


# Verilator optimises each instance of a module apart: V3Gate and the DFG passes put the
# parent's expressions (slices of its registers) in place of a PE's input ports, and V3Table
# numbers its lookup tables per instance, so every PE of an array gets C++ of its own (about 45 MB
# for the 144 shift PEs of digits at 9x16x16, of 55 MB in all). Without those three passes all
# instances run the same functions (17 MB in all) and large arrays build much faster, but they
# simulate more slowly, so only the tests' builds (``build(quick=True)``: a few images each) use
# them. Digits FIX8 at 9x16x16, back to back on 2026-12-02: built in 61.4 s with them and 106.6 s
# without, simulated at 16.4-17.3 images/s with them and 20.3-21.4 without (three alternating
# 50-image runs on an evening machine; on that afternoon's machine, at half speed, builds took
# 263 -> 169 s of CPU and the noise hid the difference in speed: 9.5 against 9.7). Smaller designs
# gain little or build slower with them, by the lines of Verilog the repeated modules stand for
# (:func:`copied_lines`, CPU seconds): 99 -> 91 at 196 k (3x16x16), 67 -> 72 at 140 k (4x16x8),
# 47 -> 54 at 27 k (3x8x4), 45 -> 64 for a 3x4x4 array that Verilator inlines whole; hence the
# threshold. Verilator notes that without V3Gate "ordering problems" may appear (a PE's clock
# reaches it through a port copy); every engine test, bit-exact and with measured cycles equal to
# the cycle model's, passes built this way.
SHARED_INSTANCE_CODE = ("-fno-gate", "-fno-dfg", "-fno-table")
SHARED_INSTANCE_CODE_LINES = 170_000


def _instances(text: str, name: str) -> int:
    import re

    return len(re.findall(rf"^  {name} \S+ \(", text, re.M))


def repeated_modules(text: str, at_least: int = NO_INLINE_INSTANCES) -> list[str]:
    """Modules of Amaranth's Verilog ``text`` instantiated ``at_least`` times (the PEs of an
    array and their drain links, emitted as one module each)."""
    import re

    names = re.findall(r"^module (\w+)\(", text, re.M)
    return [n for n in names if _instances(text, n) >= at_least]


def copied_lines(text: str) -> int:
    """Lines of Verilog the instances of :func:`repeated_modules` stand for: each such module's
    lines with those of the modules below it (Amaranth names them ``<module>.<path>``), times its
    instances."""
    import re

    lines: dict[str, int] = {}
    for m in re.finditer(r"^module \\?([^\s(]+)\s*\(.*?^endmodule", text, re.M | re.S):
        lines[m.group(1)] = m.group(0).count("\n")
    return sum(_instances(text, n) * sum(v for k, v in lines.items()
                                         if k == n or k.startswith(n + "."))
               for n in repeated_modules(text))


def _source_digest() -> str:
    from hw import source_sha256

    h = hashlib.sha256(source_sha256().encode())
    h.update(Path(__file__).read_bytes())  # the build recipe itself
    for pkg in ("cocotb", "verilator"):
        h.update(f"{pkg}={importlib.metadata.version(pkg)}".encode())
    return h.hexdigest()


def objcache_command() -> str:
    """``OBJCACHE`` for ``verilated.mk``: Verilator's run-time library is compiled once per
    installation and then reused by every build (:mod:`sim.objcache`)."""
    import shlex
    import sys

    return shlex.join([sys.executable, str(Path(__file__).with_name("objcache.py")),
                       str(BUILD_ROOT / "objcache")])


@contextmanager
def _locked(path: Path, waiting: Callable[[], None] = lambda: None):
    """An exclusive lock on ``path``; ``waiting()`` is called if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_stage(obj_dir: Path) -> str:
    """What a build in ``obj_dir`` is doing, from its files: Verilator writes every C++ file
    when it finishes, then make compiles each into a ``.o`` beside it."""
    cpp = {p.stem for p in obj_dir.glob("*.cpp")}
    if not cpp:
        return "Verilator: Verilog -> C++"
    done = sum(1 for p in obj_dir.glob("*.o") if p.stem in cpp)
    return f"g++: {done} of {len(cpp)} C++ files compiled"


@contextmanager
def heartbeat(progress: Callable[[str], None] | None, every: float,
              say: Callable[[float], str]):
    """While the block runs, ``progress`` hears ``say(seconds since it began)`` every
    ``every`` seconds (how far a long step is)."""
    if progress is None:
        yield
        return
    stop, t0 = threading.Event(), time.perf_counter()

    def beat() -> None:
        while not stop.wait(every):
            progress(say(time.perf_counter() - t0))

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class BuildError(RuntimeError):
    """Verilator or the C++ compiler refused a design; the message has the first errors and
    names the whole log."""


def _build_errors(log: Path, most: int = 3) -> str:
    """The first ``most`` error lines of a failed build's log (Verilator's ``%Error``,
    the compiler's ``error:``, make's ``***``), or its last line."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [ln.strip() for ln in lines
              if ln.startswith("%Error") or " error: " in ln or "fatal error:" in ln]
    errors = errors or [ln.strip() for ln in lines if "***" in ln]
    if not errors:
        return lines[-1].strip() if lines else "no build log"
    more = len(errors) - most
    return "; ".join(errors[:most]) + (f" (and {more} more)" if more > 0 else "")


@dataclass(frozen=True)
class Build:
    name: str
    directory: Path
    seconds: float      # build time (0 when reused from the cache)
    cached: bool
    toplevel: str = TOP

    @property
    def verilog(self) -> Path:
        return self.directory / f"{self.toplevel}.v"


def build_directory(name: str, key: dict, waves: bool = False) -> Path:
    """Where the build of configuration ``key`` lives: ``<name>-<hash>`` under the cache."""
    digest = hashlib.sha256((json.dumps(key, sort_keys=True) + _source_digest() +
                             f"waves={waves}").encode()).hexdigest()[:16]
    return BUILD_ROOT / f"{name}-{digest}"


def build(make_top, name: str, key: dict, *, waves: bool = False, toplevel: str = TOP,
          progress: Callable[[str], None] | None = None, every: float = 30.0,
          threads: int = 1, quick: bool = False) -> Build:
    """Build ``make_top()`` for Verilator, or reuse the cached build.

    ``make_top()`` returns an Amaranth component (converted with module name ``toplevel``) or the
    Verilog text of a design whose top module is ``toplevel`` (``shiftadd sim`` builds the
    generated file itself). ``key`` identifies the configuration (JSON-serialisable; for text,
    include its hash); ``make_top`` is only called when a build is needed. ``progress``, if
    given, hears what a build that takes long is doing every ``every`` seconds, and that the
    call waits for another process building the same configuration. ``threads``: the model's
    evaluation threads (Verilator ``--threads``, fixed at build time, so each count is a build
    of its own); more than one pays only while that many cores are free, since Verilator's
    threads spin while they wait for each other. ``quick``: a build for a few images (the
    tests), which favours build time over simulation speed (:data:`SHARED_INSTANCE_CODE`, on
    large arrays only); a build of its own.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    waves = waves or os.environ.get("WAVES") == "1"
    if threads > 1:
        key = {**key, "verilator_threads": threads}
    if quick:
        key = {**key, "quick": True}
    directory = build_directory(name, key, waves)
    stamp = directory / "built.json"

    def waiting() -> None:
        if progress:
            progress(f"  waiting for another process building {directory}")

    with _locked(directory, waiting), heartbeat(
            progress, every,
            lambda t: f"  still building: {build_stage(directory / 'obj')} ({t:.0f} s)"):
        if stamp.exists():
            _hold(directory)
            return Build(name, directory, 0.0, True, toplevel)
        check_build_tools()  # before make_top(), which may take a minute
        if directory.exists():
            shutil.rmtree(directory)  # a half-finished build from an interrupted run
        directory.mkdir(parents=True)
        t0 = time.perf_counter()
        top = make_top()
        text = top if isinstance(top, str) else verilog(top, toplevel)
        (directory / f"{toplevel}.v").write_text(text)
        models = write_sim_models(directory, text).name if uses_primitives(text) else None
        sources = [directory / "public.vlt"] + ([directory / models] if models else [])
        (directory / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True))
        repeated = repeated_modules(text)
        shared = quick and copied_lines(text) >= SHARED_INSTANCE_CODE_LINES
        # Only the top module's ports are visible to cocotb (VPI); internals stay private (and
        # optimisable).
        (directory / "public.vlt").write_text("`verilator_config\n" + "".join(
            f'public_flat_rw -module "{toplevel}" -var "{p}"\n'
            for p in top_ports(text, toplevel)) + "".join(
            f'no_inline -module "{n}"\n' for n in repeated))
        configure_verilator()
        os.environ["OBJCACHE"] = objcache_command()
        from cocotb_tools.runner import get_runner

        runner = get_runner("verilator")
        log = directory / "build.log"
        try:
            runner.build(sources=[*sources, directory / f"{toplevel}.v"],
                         hdl_toplevel=toplevel, build_dir=directory / "obj", always=True,
                         waves=waves,
                         build_args=["--no-public-flat-rw", "-O3", "--x-assign", "fast",
                                     "--x-initial", "unique", "-Wno-fatal", "-Wno-lint",
                                     "-Wno-style", *(SHARED_INSTANCE_CODE if shared else ()),
                                     *(["--threads", str(threads)] if threads > 1 else [])],
                         log_file=log)
        except RuntimeError as e:  # the runner's "Command failed with return code: N"
            raise BuildError(f"the Verilator build in {directory} failed ({e}): "
                             f"{_build_errors(log)} (whole log: {log})") from None
        seconds = time.perf_counter() - t0
        stamp.write_text(json.dumps({"seconds": round(seconds, 2)}))
        _hold(directory)
        return Build(name, directory, seconds, False, toplevel)


# A process that has a build keeps it from being cleared (:func:`clear_builds`) until it exits:
# a shared lock on ``<directory>.use``, taken under the build lock.
_HELD: dict[Path, object] = {}


def _hold(directory: Path) -> None:
    if directory not in _HELD:
        f = open(str(directory) + ".use", "w")  # held until the process exits
        fcntl.flock(f, fcntl.LOCK_SH)
        _HELD[directory] = f


@atexit.register
def _release_held() -> None:
    """Close the held files at exit (the locks go with them) rather than leave them to the
    interpreter's teardown, which warns of each (ResourceWarning under ``-W error``)."""
    for f in _HELD.values():
        f.close()
    _HELD.clear()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def cached_builds() -> list[dict]:
    """Every build directory in the cache: its name, bytes, and whether it is complete."""
    if not BUILD_ROOT.is_dir():
        return []
    return [{"name": d.name, "bytes": _size(d), "complete": (d / "built.json").exists()}
            for d in sorted(BUILD_ROOT.iterdir())
            if d.is_dir() and d.name != "objcache"]


def clear_builds() -> dict:
    """Delete every build no process is building or holding (a process that ran or runs a
    simulation holds its build until it exits), and the compiled run-time library. A held
    build is kept and named. Lock files stay: deleting a lock file another process has open
    would let two processes hold the same lock."""
    removed, kept, freed = [], [], 0
    for b in cached_builds():
        d = BUILD_ROOT / b["name"]
        with open(str(d) + ".lock", "a") as build_lock, open(str(d) + ".use", "a") as use:
            try:
                fcntl.flock(build_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                kept.append(b["name"])
                continue
            shutil.rmtree(d)
            removed.append(b["name"])
            freed += b["bytes"]
    objcache = BUILD_ROOT / "objcache"
    if objcache.is_dir():  # entries appear by rename and a missing one is compiled again
        freed += _size(objcache)
        shutil.rmtree(objcache, ignore_errors=True)
    return {"directory": str(BUILD_ROOT), "removed": removed, "kept_in_use": kept,
            "freed_bytes": freed}


def random_memories(seed: int) -> list[str]:
    """Run-time arguments that start every memory (and any variable without an initial value;
    Amaranth gives every signal one) with random contents: builds use ``--x-initial unique``,
    and ``+verilator+rand+reset+2`` picks random over zeros. A board's memories hold whatever
    the last design or image left there, so a design must never read a word it has not
    written; with zeros a simulation could not tell."""
    return ["+verilator+rand+reset+2", f"+verilator+seed+{seed % 0x7FFFFFFF + 1}"]


def run(b: Build, test_module: str, config: dict, *, seed: int, tests: str | None = None
        ) -> Path:
    """Run cocotb ``test_module`` against build ``b``; raise :class:`RTLTestFailure` on failure.

    ``tests`` is a regular expression matched at the start of the cocotb tests' own names (not
    their module's path: ``board`` selects ``board_tb.board`` only; ``None``: all of them).
    Each run gets its own results directory (safe under pytest-xdist). Returns that directory.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    env = verilator_env()
    run_dir = b.directory / "runs" / f"{test_module.rsplit('.', 1)[-1]}-{os.getpid()}-{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner("verilator")
    extra = {"SHIFTADD_TB": json.dumps(config),
             "PYTHONPATH": os.pathsep.join(
        [str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    try:
        results = runner.test(test_module=test_module, hdl_toplevel=b.toplevel,
                              hdl_toplevel_lang="verilog",
                              build_dir=b.directory / "obj", test_dir=run_dir, seed=seed,
                              test_filter=None if tests is None else rf"\.(?:{tests})[^.]*$",
                              plusargs=random_memories(seed),
                              extra_env=extra,
                              results_xml=str(run_dir / "results.xml"),
                              log_file=run_dir / "sim.log")
    except SystemExit:  # the runner exits when tests fail; the results file says which
        results = run_dir / "results.xml"
    try:
        total, failed = get_results(results)
    except RuntimeError as e:  # the simulator died before writing results
        total, failed = 0, 0
        print(e)
    if total == 0 or failed:
        log = (run_dir / "sim.log").read_text(errors="replace") if (
            run_dir / "sim.log").exists() else ""
        tail = "\n".join(log.splitlines()[-40:])
        raise RTLTestFailure(f"{failed} of {total} cocotb tests failed in {test_module} "
                             f"(seed {seed}, log {run_dir / 'sim.log'}):\n{tail}")
    return run_dir
