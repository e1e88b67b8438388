"""Shared fixtures. Expensive artifacts (a trained digits checkpoint) are built once per
configuration into ``build/test-cache`` under a file lock, so pytest-xdist workers share them."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from gen.cli import pin_cpu_kernels

# as the CLI does, before anything imports torch: the trained checkpoints the tests share must
# not depend on whether the machine has AVX-512 (gen/cli.py)
CPU_KERNELS = pin_cpu_kernels()


def _workers() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


# pytest-xdist workers share the cores: one torch/BLAS thread each, inherited by the CLI and
# emulator subprocesses. Measured on 2 cores with the other one busy: a training step takes
# 994 ms with 2 threads, 244 ms with 1 (the second thread spins waiting for a taken core).
if _workers() > 1:
    os.environ["OMP_NUM_THREADS"] = "1"

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "test-cache"


def needs_tool(name: str) -> str:
    """The path of a program some tests run (``sim.tools.TEST_TOOLS``). Missing, the calling
    test module is skipped, but fails under ``SHIFTADD_REQUIRE_TOOLS=1``, which ``.ci/run``
    sets (it installs them): in CI a missing tool must never pass as a skip."""
    from sim.tools import TEST_TOOLS, find_tool

    found = find_tool(name)
    if found is None:
        package, user = TEST_TOOLS[name]
        why = f"{name} not found: apt-get install {package} ({user}; .ci/run installs it)"
        if os.environ.get("SHIFTADD_REQUIRE_TOOLS") == "1":
            pytest.fail(why, pytrace=False)
        pytest.skip(why, allow_module_level=True)
    return found


@contextmanager
def locked(name: str):
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_checkpoint(epochs: int | None = None, seed: int = 0) -> Path:
    """Train the digits model with the given settings (default epochs: ``shiftadd train``'s)
    once; later calls reuse the file. One thread and torch's AVX2 kernels, whatever the machine
    or the pytest workers: the weights depend on both (``gen/nn/train.py``), and the key must
    fix them."""
    from gen import checkpoint
    from gen.nn.train import TrainConfig, train_digits

    epochs = epochs or TrainConfig().epochs
    src = b"".join((ROOT / p).read_bytes() for p in
                   ("gen/nn/layers.py", "gen/nn/models.py", "gen/nn/train.py", "gen/nn/data.py"))
    key = hashlib.sha256(src + json.dumps([epochs, seed, CPU_KERNELS])
                         .encode()).hexdigest()[:16]
    path = CACHE / f"digits-{key}.pt"
    with locked(f"digits-{key}"):
        if not path.exists():
            res = train_digits("digits", TrainConfig(epochs=epochs, seed=seed, threads=1))
            checkpoint.save(path, res.model, "digits", res.normalization,
                            {"float_test_accuracy": res.test_accuracy}, {"name": "sklearn-digits"})
    return path


def _code_digest() -> str:
    """The generator's and the hardware's sources: what a generated OUT/ depends on."""
    h = hashlib.sha256()
    for path in sorted(p for pkg in ("gen", "hw", "sim") for p in (ROOT / pkg).rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def generated(ckpt: Path, *args: str) -> Path:
    """``shiftadd gen CKPT ARGS -o OUT`` once per checkpoint, arguments and source, shared by
    every test and pytest-xdist worker (an OUT/ is only read by them: a test that changes one
    copies it first). Equal Verilog, so one RTL build for all of them (``sim/rtl.py``)."""
    from gen.cli import main

    key = hashlib.sha256(ckpt.read_bytes() + json.dumps(args).encode()
                         + _code_digest().encode()).hexdigest()[:16]
    out = CACHE / f"gen-{key}"
    with locked(f"gen-{key}"):
        if not out.exists():
            staging = CACHE / f"gen-{key}.staging"
            shutil.rmtree(staging, ignore_errors=True)  # from a run cut short
            assert main(["gen", str(ckpt), "-o", str(staging), *args]) == 0
            staging.rename(out)
    return out


# The digits designs the RTL tests and the emulated board share (``generated`` arguments):
# FIX8 at the tests' geometry, FIX32 at the one gen picks.
DIGITS_GEOMETRY = ("--rows", "4", "--cols", "16", "--lanes", "8")
DIGITS_DESIGNS = {"fix8": ("--precision", "fix8", *DIGITS_GEOMETRY),
                  "fix32": ("--precision", "fix32")}


def digits_design(precision: str) -> Path:
    """The trained digits model generated as :data:`DIGITS_DESIGNS` says."""
    return generated(cached_checkpoint(), *DIGITS_DESIGNS[precision])


def prepare_digits() -> None:
    """Train the digits model, generate its designs and build their Verilog (what the last
    tests need), each once (``cached_checkpoint``, ``generated``, ``sim/rtl.py``'s cache)."""
    from gen.generate import load_outdir, simulation_verilog
    from sim.accel import build_verilog

    for precision in DIGITS_DESIGNS:
        out = digits_design(precision)
        manifest, _, _ = load_outdir(out)
        build_verilog(simulation_verilog(out, manifest), manifest["top"])


_background: subprocess.Popen | None = None


def _group_by_xdist_mark(config, items) -> None:
    """``--dist loadgroup`` (pyproject.toml) as pytest-xdist means it: a test marked
    ``xdist_group(NAME)`` gets ``@NAME`` after its node id, by which the controller sends every
    test of a group to one worker. xdist 3.8 sets ``item._nodeid``, which pytest 9.2 no longer
    reads (the id is ``item._id``), so with these versions its groups were silently ignored:
    the tests of one Verilator build ran on both workers and one waited on the other's build.
    A suffix already there (a fixed xdist) is left alone."""
    if not getattr(config.option, "loadgroup", False):  # set on workers (xdist's setup_config)
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the tests that need the trained digits checkpoint run last, and the
    first worker trains it in a background process from the start, then generates and builds
    the designs they share (:func:`prepare_digits`): the other tests keep both cores busy
    meanwhile, where a worker would otherwise sit waiting on a lock for the training (about 4
    minutes) or for the other worker's gen and Verilator build (about 3 minutes for the two).
    Every worker sorts the same way, so they still collect the same order."""
    _group_by_xdist_mark(config, items)
    if _workers() < 2:
        return
    needs = [i for i in items if "trained_digits" in getattr(i, "fixturenames", ())]
    if not needs:
        return
    items[:] = [i for i in items if i not in needs] + needs
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
        global _background
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(CACHE / "background-training.log", "w") as log:
            _background = subprocess.Popen(
                [sys.executable, "-c", "import sys; sys.path.insert(0, 'tests'); import conftest; "
                 "conftest.prepare_digits()"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)


def pytest_sessionfinish(session):
    # normally long finished (the last tests waited for it); a run cut short stops it here
    if _background is not None and _background.poll() is None:
        _background.terminate()
        _background.wait()


@pytest.fixture(scope="session")
def trained_digits() -> Path:
    """The digits model trained with the default (README) settings."""
    return cached_checkpoint()


@pytest.fixture(scope="session")
def quick_digits() -> Path:
    """A briefly trained digits model: real weights, for tests that do not judge accuracy."""
    return cached_checkpoint(epochs=3)


@pytest.fixture
def seed(request) -> int:
    """One logged seed per test (override with SHIFTADD_SEED); reseeds Python, numpy, torch."""
    import torch

    s = int(os.environ.get("SHIFTADD_SEED", random.randrange(2**31)))
    print(f"seed={s} (rerun with SHIFTADD_SEED={s})")
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return s
