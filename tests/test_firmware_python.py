"""The agent runs on the board's own Python (``firmware.MIN_PYTHON``, older than this machine's
3.11) with the standard library and numpy: every ``firmware/`` module is held to that here,
since no such Python runs on this machine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from firmware import MIN_PYTHON

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
MODULES = sorted(FIRMWARE.glob("*.py"))
VERMIN = [sys.executable, "-c", "import sys; from vermin import main; sys.exit(main())"]


def newer_than_min(src: str) -> list[str]:
    """What in ``src`` needs a Python newer than ``MIN_PYTHON``, as far as the syntax shows:
    grammar (``ast`` at that feature version), and ``X | Y`` types evaluated at run time
    (``isinstance``/``issubclass``; annotations are strings under ``from __future__ import
    annotations``, which every module with annotations must have)."""
    found = []
    try:
        tree = ast.parse(src, feature_version=MIN_PYTHON)
    except SyntaxError as e:
        return [f"line {e.lineno}: {e.msg}"]
    annotated = any(isinstance(n, ast.AnnAssign | ast.arg) and n.annotation is not None or
                    isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.returns is not None
                    for n in ast.walk(tree))
    if annotated and not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                             any(a.name == "annotations" for a in n.names) for n in tree.body):
        found.append("annotations without `from __future__ import annotations`")
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and \
                n.func.id in ("isinstance", "issubclass") and len(n.args) == 2 and \
                any(isinstance(m, ast.BinOp) and isinstance(m.op, ast.BitOr)
                    for m in ast.walk(n.args[1])):
            found.append(f"line {n.lineno}: {n.func.id} with an X | Y type")
    return found


def imported_packages(src: str) -> set[str]:
    tree = ast.parse(src)
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_firmware_syntax_fits_the_boards_python(path):
    assert newer_than_min(path.read_text()) == []


def test_the_check_catches_what_the_agent_once_had():
    """``isinstance(shape, list | tuple)`` (firmware/tensors.py until 2026-12-01) raises
    TypeError before Python 3.10; a ``match`` statement does not parse before it."""
    head = "from __future__ import annotations\n"
    assert newer_than_min(head + "ok = isinstance(s, (list, tuple))\n") == []
    assert newer_than_min(head + "ok = isinstance(s, list | tuple)\n") == \
        ["line 2: isinstance with an X | Y type"]
    assert "Pattern matching" in newer_than_min(head + "match x:\n    case 1:\n        pass\n")[0]
    assert newer_than_min("x: int | None = None\n") == \
        ["annotations without `from __future__ import annotations`"]
    assert newer_than_min("MIN = (3, 8)\n") == []


def test_firmware_imports_only_the_standard_library_and_numpy():
    # pynq: only where the board has it (mmio.PynqBuffer, imported when chosen)
    allowed = set(sys.stdlib_module_names) | {"numpy", "firmware", "__future__", "pynq"}
    for path in MODULES:
        extra = imported_packages(path.read_text()) - allowed
        assert not extra, f"{path.name} imports {sorted(extra)}"


def test_firmware_library_calls_exist_in_the_boards_python():
    """vermin's table of when each standard-library module, function and argument appeared
    (``str.removeprefix``: 3.9, ``zip(strict=)``: 3.10, ...): nothing newer than
    ``MIN_PYTHON``."""
    target = ".".join(map(str, MIN_PYTHON))
    r = subprocess.run([*VERMIN, f"-t={target}-", "--violations",
                        "--no-tips", "--no-parse-comments", str(FIRMWARE)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "not met" not in r.stdout, r.stdout + r.stderr
    # and it sees such calls: the same check fails on one
    r = subprocess.run([*VERMIN, f"-t={target}-", "--violations",
                        "--no-tips", "--no-parse-comments", "-c",
                        "print('x'.removeprefix('a'))"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "removeprefix" in r.stdout, r.stdout + r.stderr
