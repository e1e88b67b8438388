"""A non-editable install (``pip install .``) works: the wheel holds every file of the packages,
not only the Python modules (``gen/cost_model.json`` was missing, so ``shiftadd gen`` failed in
such an install)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gen", "hw", "sim", "firmware", "host")
NOT_SHIPPED = {"firmware/ruff.toml"}  # a lint setting, read by no code


def package_files() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")
            if p.is_file() and not any(part == "__pycache__" or part.startswith(".")
                                       for part in p.relative_to(ROOT).parts)} - NOT_SHIPPED


def test_the_wheel_holds_every_file_of_the_packages(tmp_path):
    # built from a copy of the sources: setuptools stages files in build/lib and would take
    # stale ones from an earlier build of the checkout
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", ".*"))
    isolation = [] if importlib.util.find_spec("setuptools") is None else \
        ["--no-build-isolation"]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation,
                        "-w", str(tmp_path), str(src)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = tmp_path.glob("shiftadd-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = {n for n in z.namelist() if n.split("/")[0] in PACKAGES}
    want = package_files()
    assert "gen/cost_model.json" in want and "hw/lint_waivers.vlt" in want
    assert want - shipped == set()
