"""``shiftadd deploy`` against a real OpenSSH server on loopback (throwaway keys, a temporary
FPGA-manager tree whose kernel side is emulated by a watcher thread). The agent runs with the
memory-loop device (no accelerator on this machine); everything else is the path a user runs
against a ZC706. ``.ci/run`` installs openssh-server and sets SHIFTADD_REQUIRE_TOOLS=1, so in
CI a missing sshd is a failure, not a skip (``conftest.needs_tool``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import needs_tool

from sim.emulated import EmulatedFpgaManager

SSHD, SSH_KEYGEN = needs_tool("sshd"), needs_tool("ssh-keygen")
TOKEN = "deploy-token-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                       check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((d / "sshd.log").read_text()) from None
            time.sleep(0.1)
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    yield {"port": port, "dir": d}
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def out(tmp_path_factory, quick_digits):
    """A generated design with a bitstream (Vivado played by the tclsh stand-in)."""
    from firmware.bitstream import SYNC, build_bit
    from gen.cli import main
    from gen.vivado import bitstream

    d = tmp_path_factory.mktemp("deploy") / "out"
    assert main(["gen", str(quick_digits), "-o", str(d), "--rows", "2", "--cols", "8",
                 "--lanes", "8"]) == 0
    tmp = d.parent
    bit = tmp / "fake.bit"
    bit.write_bytes(build_bit(b"\xff" * 8 + SYNC + b"\x20\x00\x00\x00" * 4))
    fake = tmp / "vivado"
    standin = Path(__file__).with_name("data") / "vivado_standin.tcl"
    fake.write_text(f"#!/bin/sh\nSTANDIN_LOG={tmp}/log STANDIN_BIT={bit} "
                    f"exec tclsh {standin} \"$@\"\n")
    fake.chmod(0o755)
    bitstream(d, vivado=str(fake))
    return d


class KernelWatcher:
    """The kernel side of the FPGA manager for a tree the remote agent writes into."""

    def __init__(self, root: Path) -> None:
        self.sysfs, self.fw = EmulatedFpgaManager.make_tree(root)
        self.mgr = EmulatedFpgaManager.manager(self.sysfs, self.fw)
        self.stop = threading.Event()
        self.seen = ""
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            name = (self.sysfs / "firmware").read_text().strip()
            if name and name != self.seen:
                self.seen = name
                self.mgr._loaded()
            time.sleep(0.02)


def _deploy(out, sshd, tmp, agent_port, *extra, json_out=True):
    remote = tmp / "board"
    fpga_root = tmp / "fpga"
    args = [sys.executable, "-m", "gen.cli", "deploy", str(out), "--board",
            f"{os.environ.get('USER', 'root')}@127.0.0.1:{sshd['port']}",
            "--key", str(sshd["dir"] / "client_key"), "--known-hosts",
            str(sshd["dir"] / "known_hosts"), "--remote-dir", str(remote),
            "--agent-port", str(agent_port), "--python", sys.executable,
            "--device", "loopback", "--token", TOKEN,
            f"--agent-arg=--fpga-sysfs={fpga_root}/sys/class/fpga_manager/fpga0",
            f"--agent-arg=--firmware-dir={fpga_root}/lib/firmware", *extra]
    if json_out:
        args.append("--json")
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_deploy_restart_and_refusals(out, sshd, tmp_path):
    import json

    from host.board import Board

    tmp, port = tmp_path, free_port()
    kernel = KernelWatcher(tmp / "fpga")
    try:
        r = _deploy(out, sshd, tmp, port)
        assert r.returncode == 0, r.stderr
        assert f"board: Python {sys.version_info[0]}.{sys.version_info[1]}, numpy" in r.stderr
        first = json.loads(r.stdout)
        assert first["status"]["backend"] == "loopback"
        # the bitstream went through the FPGA manager: file in place, state operating
        assert (tmp / "fpga/lib/firmware/shiftadd.bin").read_bytes() == \
            (out / "shiftadd.bin").read_bytes()
        assert (kernel.sysfs / "state").read_text().strip() == "operating"
        for rel in ("firmware/agent.py", "manifest.json", "program.bin", "weights.bin"):
            assert (tmp / "board" / rel).exists()
        assert oct((tmp / "board/token").stat().st_mode & 0o777) == "0o600"
        with Board(f"127.0.0.1:{port}", TOKEN) as b:
            assert b.status()["backend"] == "loopback"
        # deploying again replaces the running agent
        r = _deploy(out, sshd, tmp, port)
        assert r.returncode == 0, r.stderr
        second = json.loads(r.stdout)
        assert second["pid"] != first["pid"]
        assert not Path(f"/proc/{first['pid']}").exists() or \
            Path(f"/proc/{first['pid']}/status").read_text().find("zombie") >= 0
        # a corrupted bitstream: the agent refuses it and the deploy says why
        blob = bytearray((out / "shiftadd.bin").read_bytes())
        blob[-1] ^= 1
        bad = tmp / "bad-out"
        shutil.copytree(out, bad)
        (bad / "shiftadd.bin").write_bytes(blob)  # manifest still has the good sha
        # load_outdir refuses it locally first
        r = _deploy(bad, sshd, tmp, port, json_out=False)
        assert r.returncode == 1 and "sha256 differs" in r.stderr
        # an unknown host key is refused
        r = subprocess.run([sys.executable, "-m", "gen.cli", "deploy", str(out), "--board",
                            f"127.0.0.1:{sshd['port']}", "--key",
                            str(sshd["dir"] / "client_key"), "--known-hosts", "/dev/null",
                            "--token", TOKEN, "--device", "loopback"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "not found in known_hosts" in r.stderr
        # a key file that is not there: said before connecting
        r = subprocess.run([sys.executable, "-m", "gen.cli", "deploy", str(out), "--board",
                            f"127.0.0.1:{sshd['port']}", "--key", str(tmp / "no-such-key"),
                            "--token", TOKEN, "--device", "loopback"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "no-such-key: no such file" in r.stderr
        assert "connecting" not in r.stderr
    finally:
        kernel.stop.set()
        pid = tmp / "board" / "agent.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)


def test_deploy_refuses_a_board_python_that_cannot_run_the_agent(out, sshd, tmp_path):
    """The board's Python is checked before anything is uploaded: too old, without numpy, or
    not there at all is a one-line error naming it."""
    from firmware import MIN_PYTHON

    old = tmp_path / "python-old"
    old.write_text(f"#!/bin/sh\necho python {MIN_PYTHON[0]} {MIN_PYTHON[1] - 1}\n"
                   "echo numpy 1.16.2\n")
    bare = tmp_path / "python-bare"  # the real Python, with numpy made unimportable
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -c "
                    "'import sys; sys.modules[\"numpy\"] = None; exec(sys.argv[1])' \"$2\"\n")
    for p in (old, bare):
        p.chmod(0o755)
    have = f"{MIN_PYTHON[0]}.{MIN_PYTHON[1] - 1}"
    need = f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}"
    for python, message in (
            (old, f"is Python {have}; the agent needs {need} or newer"),
            (bare, "has no numpy, which the agent needs"),
            (tmp_path / "no-python", "does not run on 127.0.0.1")):
        r = _deploy(out, sshd, tmp_path, free_port(), "--python", str(python), json_out=False)
        assert r.returncode == 1 and message in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("shiftadd deploy: error:")
        assert not (tmp_path / "board").exists()  # nothing uploaded
