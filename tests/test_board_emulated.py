"""End to end: host -> TCP -> agent (emulated device) -> the generated Verilog under Verilator.

The emulated board is the real command (``shiftadd board emulate``) in its own process; the host
side is the real ``Board`` API and ``shiftadd run``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import digits_design

from firmware import protocol as P
from host.board import Board
from host.client import AgentClient, RemoteError
from sim import golden
from sim.emulated import EmulatorProcess

TOKEN = "test-token-0123"


@pytest.fixture(scope="module", params=["fix8", "fix32"])
def board(request, tmp_path_factory, trained_digits):
    """The emulated board serving a copy (it writes into its OUT/) of the design the RTL tests
    build: FIX8 at their geometry, FIX32 at the one gen picks (the same Verilog, so the same
    Verilator build)."""
    tmp = tmp_path_factory.mktemp(f"board-{request.param}")
    out = tmp / f"digits-{request.param}"
    shutil.copytree(digits_design(request.param), out)
    with EmulatorProcess(out, TOKEN, tmp / "emulator.log") as emu:
        yield out, emu


def _digits(manifest: dict, n: int) -> np.ndarray:
    from gen.nn.data import Normalization, load_digits_splits

    norm = manifest["model"]["normalization"]
    _, test = load_digits_splits()
    return Normalization(norm["mean"], norm["std"]).apply(test.pixels[:n])


def test_real_images_bit_exact_end_to_end(board):
    """100 real test images (floats, quantized by the host) -> results equal the golden model's."""
    from gen.generate import load_outdir

    out, emu = board
    with Board(emu.address, TOKEN) as b:
        manifest = b.deploy(out)
        x = _digits(manifest, 100)
        ints, values = b.infer(x, batch=25)
        st = b.status()
    _, net, _ = load_outdir(out)
    ref = golden.run(net, b.quantize(x))
    assert ints.shape == ref.shape and np.array_equal(ints, ref)
    assert np.array_equal(values, ref * 2.0 ** -manifest["output"]["format"]["frac"])
    assert st["backend"] == "emulated" and st["loaded"] and st["inferences"] >= 100
    assert st["build_id"] == manifest["build_id_hex"] and st["errors"] == []
    # each request of 25 images ran as one start (IMAGES = 25): one DMA each way, one wait
    # (an image after a batch's first skips the start and done handshakes: about 2 cycles)
    assert st["last_run"]["images"] == 25
    assert st["last_run"]["cycles"] > 24.9 * manifest["cycles_per_image"] > 0


def test_the_readme_python_example_runs(board, tmp_path):
    """The README's Python block, as written but for the board's address, token, OUT/ and
    input file: it prints the golden model's classes and a cycle count."""
    import contextlib
    import io
    import re

    from gen.generate import load_outdir
    from gen.numerics import Format, quantize_real

    out, emu = board
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- python-api -->\n```python\n(.*?)```", readme, re.S).group(1)
    manifest, net, _ = load_outdir(out)
    x = _digits(manifest, 12)
    np.save(tmp_path / "x.npy", x)
    for old, new in (('"zc706:7700"', repr(emu.address)), ('"T"', repr(TOKEN)),
                     ('"out/d8"', repr(str(out))), ('"x.npy"', repr(str(tmp_path / "x.npy")))):
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    classes, cycles = printed.getvalue().splitlines()
    y = golden.run(net, quantize_real(x, Format.from_json(manifest["input"]["format"])))
    assert classes == str(y.reshape(12, -1).argmax(axis=1))
    assert float(cycles.split()[0]) > 0.9 * manifest["cycles_per_image"]


def test_cli_run_check(board, tmp_path):
    out, emu = board
    x = tmp_path / "x.npy"
    from gen.generate import load_outdir

    manifest, _, _ = load_outdir(out)
    images = _digits(manifest, 8)
    images[2, 0, 3, 4], images[5, 0, 0, 0] = 50.0, -50.0   # far beyond the input format
    np.save(x, images)
    r = subprocess.run([sys.executable, "-m", "gen.cli", "run", str(out), "--board", emu.address,
                        "--token", TOKEN, "--input", str(x), "--check", "--json",
                        "--output", str(tmp_path / "preds")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["images"] == 8 and obj["mismatches"] == 0 and obj["mismatching_images"] == []
    # the accelerator's own count (its CYCLES, through the agent): the cycle model's, give or
    # take the streams' idle cycles and the batch's saved handshakes
    model = manifest["cycles_per_image"]
    assert 0.99 * model <= obj["device_cycles_per_image"] <= 1.1 * model, obj
    hz = manifest["clock_mhz"] * 1e6
    assert abs(obj["device_images_per_s"] * obj["device_cycles_per_image"] / hz - 1) < 1e-3
    assert obj["images_per_s"] > 0
    ints = np.load(tmp_path / "preds.npy")  # named as np.save names it
    assert ints.shape[0] == 8 and ints.reshape(8, -1).argmax(1).tolist() == obj["predictions"]
    assert obj["ties"] == sum(row.count(max(row)) > 1 for row in ints.reshape(8, -1).tolist())
    # the digits themselves lie within the format calibrated on them; the two values do not
    assert obj["saturated_inputs"] == 2
    assert "[run] note: 2 of 512 input values lie beyond the input format's range" in r.stderr
    assert "accuracy" not in obj  # no labels given, none known for a .npy
    # --labels: the board's classes against them; one label changed is one image wrong
    labels = np.array(obj["predictions"])
    labels[3] = (labels[3] + 1) % 10
    np.save(tmp_path / "y.npy", labels)
    r = subprocess.run([sys.executable, "-m", "gen.cli", "run", str(out), "--board", emu.address,
                        "--token", TOKEN, "--input", str(x), "--labels", str(tmp_path / "y.npy"),
                        "--no-load"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "accuracy 87.50 % (7 of 8 labelled images)" in r.stdout
    # digits-test:N brings the split's labels: its accuracy is the golden model's on them
    from gen.nn.data import load_digits_splits

    r = subprocess.run([sys.executable, "-m", "gen.cli", "run", str(out), "--board", emu.address,
                        "--token", TOKEN, "--input", "digits-test:40", "--no-load", "--json"],
                       capture_output=True, text=True, timeout=600)
    obj = json.loads(r.stdout)
    from host.board import prepare_inputs

    _, net, _ = load_outdir(out)
    ref = golden.run(net, prepare_inputs(_digits(manifest, 40), manifest)[0])
    want = int((ref.reshape(40, -1).argmax(1) == load_digits_splits()[1].labels[:40]).sum())
    assert obj["correct"] == want and obj["accuracy"] == round(100 * want / 40, 2)


def test_cli_run_check_names_the_images_that_differ(board, capsys, monkeypatch):
    """``run --check`` names each image whose board output differs from the golden model's:
    here the reference of images 1 and 4 is altered (one output each; the board runs as
    always), and the run exits 1 listing exactly those two."""
    from gen.cli import main

    out, emu = board
    real = golden.run

    def altered(net, x):
        y = real(net, x).copy()
        y.reshape(len(y), -1)[[1, 4], 0] += 1
        return y

    monkeypatch.setattr(golden, "run", altered)
    argv = ["run", str(out), "--board", emu.address, "--token", TOKEN, "--input",
            "digits-test:6", "--check"]
    capsys.readouterr()
    assert main([*argv, "--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert obj["mismatches"] == 2 and obj["mismatching_images"] == [1, 4], obj
    assert main([*argv, "--no-load"]) == 1
    assert "golden model check: 2 mismatching images (1, 4)" in capsys.readouterr().out


def test_cli_run_checks_out_and_inputs_before_connecting(board, tmp_path, capsys):
    """``shiftadd run`` reads OUT/ and the inputs before it connects: against a port nothing
    listens on, each bad input is its own one-line error, not "cannot reach the agent"
    (``digits-test:-3`` once ran all but the last 3 test images)."""
    from gen.cli import main

    out, _ = board
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not numpy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 8, 8), np.float32))
    np.save(tmp_path / "nan.npy", np.full((2, 1, 8, 8), np.inf, np.float32))
    np.save(tmp_path / "wide.npy", np.full((2, 1, 8, 8), 1 << 40))  # no format holds it
    for spec, message in [("digits-test:-3", "N must be 1.."), ("digits-test:x", "N must be 1.."),
                          ("digits-test:100000", "N must be 1.."),
                          (str(tmp_path / "none.npy"), "no such file"),
                          (str(garbage), "not a .npy array"),
                          (str(tmp_path / "empty.npy"), "holds no inputs"),
                          (str(tmp_path / "nan.npy"), "contains NaN or infinity"),
                          (str(tmp_path / "wide.npy"), "must lie in [")]:
        argv = ["run", str(out), "--board", "127.0.0.1:1", "--token", TOKEN, "--input", spec]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and "cannot reach" not in err, err
    np.save(tmp_path / "y3.npy", np.array([1, 2, 3]))
    np.save(tmp_path / "y5.npy", np.array([1, 2, 3, 4, 10]))
    np.save(tmp_path / "yf.npy", np.zeros(5))
    for labels, message in [("y3.npy", "shape [3]; --input has 5 inputs, so [5] class indices"),
                            ("y5.npy", "10 (label 4) is no class of this model (0..9)"),
                            ("yf.npy", "holds float64, not integer class indices")]:
        assert main(["run", str(out), "--board", "127.0.0.1:1", "--token", TOKEN, "--input",
                     "digits-test:5", "--labels", str(tmp_path / labels)]) == 1
        err = capsys.readouterr().err
        assert message in err and "cannot reach" not in err, err
    assert main(["run", str(tmp_path), "--board", "127.0.0.1:1", "--token", TOKEN, "--input",
                 "digits-test:5"]) == 1
    assert "no manifest.json" in capsys.readouterr().err
    (tmp_path / "preds.npy").mkdir()  # where the outputs would go: said before connecting
    assert main(["run", str(out), "--board", "127.0.0.1:1", "--token", TOKEN, "--input",
                 "digits-test:5", "--output", str(tmp_path / "preds")]) == 1
    assert "preds.npy is a directory, not a file name" in capsys.readouterr().err
    # with OUT/ and the inputs good, the next error is the connection
    assert main(["run", str(out), "--board", "127.0.0.1:1", "--token", TOKEN, "--input",
                 "digits-test:5"]) == 1
    assert "cannot reach the agent at 127.0.0.1:1" in capsys.readouterr().err


def test_faults_leave_the_agent_serving(board, tmp_path):
    """Wrong token, wrong shape and dtype, out-of-range and NaN inputs, a corrupted blob, a
    foreign build, inputs for another build than the board runs (``run --no-load`` with an OUT/
    generated since) and a client that disconnects mid-transfer: each is one clear error, and
    the agent keeps answering correctly afterwards."""
    out, emu = board
    host, port = emu.address.split(":")
    with pytest.raises(RemoteError, match="auth"):
        AgentClient(host, int(port), "wrong")
    with Board(emu.address, TOKEN) as b:
        manifest = b.deploy(out)
        x = _digits(manifest, 2)
        q = b.quantize(x)
        prec = manifest["model"]["precision"]
        with pytest.raises(RemoteError, match="device_error"):  # wrong shape
            b.client.infer(q[:, :, :4, :], prec)
        other = "fix32" if prec == "fix8" else "fix8"
        with pytest.raises(RemoteError, match="bad_dtype"):
            b.client.infer(np.zeros(q.shape, np.int64), other)
        with pytest.raises(ValueError, match="NaN"):
            b.infer(np.full_like(x, np.nan))
        with pytest.warns(UserWarning, match=r"^3 of 128 input values lie beyond the input "):
            wide = b.quantize(np.where(np.arange(x.size).reshape(x.shape) < 3, 99.0, x))
        assert np.array_equal(wide.reshape(-1)[3:], q.reshape(-1)[3:])
        with pytest.raises(ValueError, match="must lie in"):
            b.infer(np.full(q.shape, 1 << 40, dtype=np.int64))
        (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "build_id_hex": "0"}))
        with Board(emu.address, TOKEN) as other:
            other.use(tmp_path)
            with pytest.raises(RemoteError, match="wrong_build: the board runs build "
                                                  f"{manifest['build_id_hex']}, not 0"):
                other.infer(q)
        blob = bytearray((out / "program.bin").read_bytes() + (out / "weights.bin").read_bytes())
        blob[-1] ^= 0x40
        with pytest.raises(RemoteError, match="sha256"):
            b.client.request(P.Kind.LOAD, {"manifest": manifest}, bytes(blob))
        foreign = json.loads(json.dumps(manifest))
        foreign["build_id"] ^= 1
        good = (out / "program.bin").read_bytes() + (out / "weights.bin").read_bytes()
        with pytest.raises(RemoteError, match="runs build"):
            b.client.request(P.Kind.LOAD, {"manifest": foreign}, good)
        # a client that vanishes in the middle of a frame
        s = socket.create_connection((host, int(port)))
        s.sendall(P.Frame(P.Kind.HELLO, 1, {"token": TOKEN}).encode())
        s.sendall(P.Frame(P.Kind.INFER, 2, {"shape": list(q.shape), "dtype": prec},
                          b"\0" * 64).encode()[:40])
        s.close()
        b.deploy(out)
        ints, _ = b.infer(x)
    from gen.generate import load_outdir

    _, net, _ = load_outdir(out)
    assert np.array_equal(ints, golden.run(net, q))


def test_board_reset_pulses_the_fabric_and_forgets_the_design(board, capsys):
    """``shiftadd board reset`` over TCP: the agent pulses the fabric reset and forgets the
    loaded design; deployed again, a run is exact. (What the pulse does to the engine is
    checked in the simulation itself: ``sim/tb/board_tb.py: cut_run_recovery``.)"""
    from gen.cli import main
    from gen.generate import load_outdir

    out, emu = board
    _, net, _ = load_outdir(out)
    with Board(emu.address, TOKEN) as b:
        manifest = b.deploy(out)
        q = b.quantize(_digits(manifest, 2))
        b.infer(q)
        assert b.status()["last_run"]["cycles"] > 0
    assert main(["board", "reset", "--board", emu.address, "--token", TOKEN, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["reset"] and not st["loaded"]
    assert main(["run", str(out), "--board", emu.address, "--token", TOKEN, "--input",
                 "digits-test:2", "--no-load"]) == 1   # the board forgot it: said, with the way
    assert "not_loaded: LOAD a manifest, program and weights first (--no-load takes the " \
        "design the board runs; without it, run loads" in capsys.readouterr().err
    with Board(emu.address, TOKEN) as b:
        with pytest.raises(RemoteError, match="not_loaded"):
            b.client.infer(q, manifest["model"]["precision"])
        b.deploy(out)
        ints, _ = b.infer(q)
    assert np.array_equal(ints, golden.run(net, q))


def test_a_terminated_emulator_takes_its_simulation_with_it(board, tmp_path):
    """``kill PID`` (SIGTERM to the shiftadd process alone, as a service manager sends it) ends
    the Verilator simulation behind ``board emulate`` too. Before, the simulation ran on, an
    orphan holding the board's port."""
    import os
    import signal
    import time

    out, _ = board
    emu = EmulatorProcess(out, TOKEN, tmp_path / "emulator.log")
    try:
        os.kill(emu.proc.pid, signal.SIGTERM)  # the process, not its group
        assert emu.proc.wait(timeout=30) == 143
        deadline = time.monotonic() + 10
        while _group_alive(emu.proc.pid):  # anything left of its session?
            assert time.monotonic() < deadline, "the simulation outlived the emulator"
            time.sleep(0.1)
        host, port = emu.address.split(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5)
        assert "shiftadd: terminated" in (tmp_path / "emulator.log").read_text()
    finally:
        emu.stop()
        if _group_alive(emu.proc.pid):
            os.killpg(emu.proc.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
