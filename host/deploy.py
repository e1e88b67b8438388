"""``shiftadd deploy OUT --board HOST``: put a generated design and the agent on a board over SSH.

Steps (each reported): connect (paramiko; the host key must be known unless
``accept_new_host_key``), check the board's Python (:data:`firmware.MIN_PYTHON`, numpy), upload
the agent (``firmware/``), the manifest, program, weights and
bitstream and the token (mode 600), verify every file's sha256 *on the board*, stop a running
agent, start the new one (it loads the bitstream through the FPGA manager and checks the
accelerator's ID and build-id registers before serving), wait until it answers, then load
program and weights through it. If the agent does not come up, the tail of its log is the error.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class DeployError(RuntimeError):
    pass


@dataclass
class DeployConfig:
    host: str
    user: str = "root"
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None
    accept_new_host_key: bool = False
    remote_dir: str = "/opt/shiftadd"
    agent_port: int = 7700
    python: str = "python3"
    device: str = "mmio"
    agent_args: list[str] = field(default_factory=list)
    load_bitstream: bool = True
    allow_timing_violation: bool = False
    start_timeout_s: float = 60.0


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# what the board's Python says of itself: its version, and numpy's (or "-")
PYTHON_PROBE = """import sys
print("python", *sys.version_info[:2])
try:
    import numpy
    print("numpy", numpy.__version__)
except ImportError:
    print("numpy -")
"""


def board_python(ssh, cfg: DeployConfig) -> str:
    """Check, before anything is uploaded, that the board's ``cfg.python`` runs the agent: at
    least :data:`firmware.MIN_PYTHON`, with numpy. Returns what it found, in words."""
    from firmware import MIN_PYTHON

    _, so, se = ssh.exec_command(f"{cfg.python} -c {shlex.quote(PYTHON_PROBE)}", timeout=60)
    out, err = so.read().decode(), se.read().decode()
    found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    need = ".".join(map(str, MIN_PYTHON))
    try:
        version = tuple(int(v) for v in found["python"].split())
    except (KeyError, ValueError):
        raise DeployError(
            f"`{cfg.python}` does not run on {cfg.host} ({err.strip()[-300:] or 'no output'}); "
            f"the agent needs Python {need} or newer with numpy there (--python names it)"
        ) from None
    have = ".".join(map(str, version))
    if version < MIN_PYTHON:
        raise DeployError(f"{cfg.python} on {cfg.host} is Python {have}; the agent needs "
                          f"{need} or newer (--python names another)")
    if found.get("numpy", "-") == "-":
        raise DeployError(f"{cfg.python} on {cfg.host} (Python {have}) has no numpy, which the "
                          "agent needs: add python3-numpy to the board's root file system")
    return f"board: Python {have}, numpy {found['numpy']}"


def deploy(out: Path, token: str, cfg: DeployConfig,
           progress: Callable[[str], None] = lambda s: None) -> dict:
    import paramiko

    from gen.generate import load_outdir
    from host.board import Board

    t0 = time.perf_counter()
    out = Path(out)
    manifest, _, _ = load_outdir(out)
    files: dict[str, bytes] = {}
    for p in sorted((ROOT / "firmware").glob("*.py")):
        files[f"firmware/{p.name}"] = p.read_bytes()
    for name in ("manifest.json", "program.bin", "weights.bin"):
        files[name] = (out / name).read_bytes()
    if cfg.load_bitstream:
        if "bitstream" not in manifest:
            raise DeployError(f"{out} has no bitstream yet: run `shiftadd bitstream {out}` where "
                              "Vivado is installed (or deploy with --no-bitstream if the FPGA is "
                              "already configured)")
        bits = manifest["bitstream"]
        if bits.get("timing_met") is False and not cfg.allow_timing_violation:
            raise DeployError(f"{out}'s bitstream did not meet timing (WNS {bits['wns_ns']:+.3f} "
                              "ns): it may compute wrong results. Regenerate with "
                              f"--clock-mhz {int(bits['max_clock_mhz'])} or lower, or pass "
                              "--allow-timing-violation")
        files["shiftadd.bin"] = (out / bits["bin"]).read_bytes()

    for what, f in (("SSH key", cfg.key), ("known-hosts file", cfg.known_hosts)):
        if f is not None and not Path(f).exists():
            raise DeployError(f"{what} {f}: no such file")

    progress(f"connecting to {cfg.user}@{cfg.host}:{cfg.port}")
    ssh = paramiko.SSHClient()
    if cfg.known_hosts:
        ssh.load_host_keys(cfg.known_hosts)
    else:
        ssh.load_system_host_keys()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy() if cfg.accept_new_host_key
                                    else paramiko.RejectPolicy())
    try:
        ssh.connect(cfg.host, cfg.port, username=cfg.user, key_filename=cfg.key, timeout=15,
                    allow_agent=cfg.key is None, look_for_keys=cfg.key is None)
    except paramiko.SSHException as e:
        raise DeployError(f"ssh {cfg.user}@{cfg.host}:{cfg.port}: {e}") from None
    except OSError as e:
        raise DeployError(f"cannot reach {cfg.host}:{cfg.port}: {e}") from None
    try:
        def run(cmd: str, check: bool = True) -> str:
            _, so, se = ssh.exec_command(cmd, timeout=60)
            text, err = so.read().decode(), se.read().decode()
            if check and so.channel.recv_exit_status() != 0:
                raise DeployError(f"on {cfg.host}: `{cmd}` failed: {err.strip()[-500:]}")
            return text

        progress(f"checking {cfg.python} on the board")
        progress(board_python(ssh, cfg))
        rd = cfg.remote_dir
        run(f"mkdir -p {shlex.quote(rd)}/firmware")
        sftp = ssh.open_sftp()
        total = sum(len(b) for b in files.values())
        sent = 0
        for rel, data in files.items():
            with sftp.open(f"{rd}/{rel}", "wb") as f:
                f.set_pipelined(True)
                f.write(data)
            sent += len(data)
            progress(f"uploaded {rel} ({len(data)} bytes; {sent}/{total})")
        with sftp.open(f"{rd}/token", "w") as f:
            f.chmod(0o600)  # before the secret is in it
            f.write(token)
        sftp.close()
        # verify on the board, with the board's own python
        listing = " ".join(shlex.quote(r) for r in files)
        check = (f"cd {shlex.quote(rd)} && {cfg.python} -c "
                 + shlex.quote("import hashlib,sys\nfor p in sys.argv[1:]: "
                               "print(p, hashlib.sha256(open(p,'rb').read()).hexdigest())")
                 + f" {listing}")
        remote = dict(line.split() for line in run(check).splitlines() if line.strip())
        bad = [r for r, data in files.items() if remote.get(r) != _sha(data)]
        if bad:
            raise DeployError(f"sha256 differs on the board after upload: {', '.join(bad)}")
        progress(f"verified {len(files)} files on the board (sha256)")

        q = shlex.quote
        run(f"cd {q(rd)} && if [ -f agent.pid ]; then kill $(cat agent.pid) 2>/dev/null; "
            "for i in $(seq 50); do kill -0 $(cat agent.pid) 2>/dev/null || break; sleep 0.1; "
            "done; rm -f agent.pid; fi")
        args = ["--port", str(cfg.agent_port), "--token-file", "token", "--manifest",
                "manifest.json", "--device", cfg.device, *cfg.agent_args]
        if cfg.load_bitstream:
            args += ["--bitstream", "shiftadd.bin"]
        cmd = " ".join(q(a) for a in args)
        # only the agent goes to the background, with no file descriptor on the SSH channel
        run(f"cd {q(rd)} || exit 1; nohup {cfg.python} -m firmware.agent {cmd} > agent.log 2>&1 "
            "< /dev/null & echo $! > agent.pid")
        pid = run(f"cat {q(rd)}/agent.pid").strip()
        progress(f"agent started (pid {pid}); waiting for it to answer on port {cfg.agent_port}")
        deadline = time.monotonic() + cfg.start_timeout_s
        while True:
            try:
                board = Board(f"{cfg.host}:{cfg.agent_port}", token, timeout_s=30)
                break
            except (ConnectionError, OSError):
                alive = run(f"kill -0 {pid} 2>/dev/null && echo yes || echo no").strip()
                if alive != "yes" or time.monotonic() > deadline:
                    tail = run(f"tail -n 20 {q(rd)}/agent.log", check=False).strip()
                    raise DeployError(f"the agent on {cfg.host} did not start:\n{tail}") from None
                time.sleep(0.3)
        with board:
            if cfg.device != "loopback":
                board.deploy(out)  # checks ID and build id, then writes program and weights
            status = board.status()
            hello = board.client.hello.meta
    finally:
        ssh.close()
    progress(f"deployed build {manifest['build_id_hex']} in {time.perf_counter() - t0:.1f} s")
    return {"host": cfg.host, "agent_port": cfg.agent_port, "pid": int(pid),
            "files": len(files), "bytes": total, "agent": hello, "status": status,
            "build_id": manifest["build_id_hex"],
            "seconds": round(time.perf_counter() - t0, 2)}
