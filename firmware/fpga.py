"""Loading a bitstream through the Linux FPGA manager (linux-xlnx: PetaLinux or PYNQ images).

The kernel loads a *byte-swapped* ``.bin`` (``firmware/bitstream.py`` converts Vivado's ``.bit``)
from its firmware directory: copy the file to ``/lib/firmware``, write ``0`` to
``/sys/class/fpga_manager/fpga0/flags`` (full reconfiguration), write the file's name to
``.../firmware``, then ``.../state`` must read ``operating``. Both paths are parameters so tests
(and the emulated board) can point them at a temporary tree. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from firmware.bitstream import SYNC_SWAPPED, has_sync

SYSFS = "/sys/class/fpga_manager/fpga0"
FIRMWARE_DIR = "/lib/firmware"


class FpgaError(RuntimeError):
    """A bitstream was refused, or the FPGA manager did not reach ``operating``."""


class FpgaManager:
    def __init__(self, sysfs: str | Path = SYSFS, firmware_dir: str | Path = FIRMWARE_DIR, *,
                 settle_s: float = 5.0) -> None:
        self.sysfs, self.firmware_dir = Path(sysfs), Path(firmware_dir)
        self.settle_s = settle_s

    def state(self) -> str:
        try:
            return (self.sysfs / "state").read_text().strip()
        except OSError as e:
            raise FpgaError(f"no FPGA manager at {self.sysfs} ({e.strerror})") from None

    def load(self, bin_path: str | Path, sha256: str, name: str = "shiftadd.bin") -> None:
        """Load ``bin_path`` if its sha256 is the manifest's; raise :class:`FpgaError` otherwise
        or when the manager does not end in ``operating``."""
        data = Path(bin_path).read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise FpgaError(f"{bin_path}: sha256 {got[:16]}... is not the manifest's "
                            f"{sha256[:16]}...: refusing to load it")
        if not has_sync(data, SYNC_SWAPPED):  # the driver would refuse it (-EINVAL)
            raise FpgaError(f"{bin_path}: no byte-swapped sync word (66 55 99 AA) at a word "
                            "boundary: not a .bin "
                            "for the FPGA manager (convert the .bit with shiftadd bitstream)")
        self.state()  # fail early and clearly when there is no FPGA manager
        self.firmware_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.firmware_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.firmware_dir / name)
        (self.sysfs / "flags").write_text("0\n")
        (self.sysfs / "firmware").write_text(name + "\n")
        self._loaded()
        # the kernel loads synchronously on most systems; poll briefly for the others
        deadline = time.monotonic() + self.settle_s
        while (state := self.state()) != "operating":
            if "error" in state or time.monotonic() > deadline:
                raise FpgaError(f"the FPGA manager reports {state!r} after loading {name}")
            time.sleep(0.02)

    def _loaded(self) -> None:
        """The kernel reacts to the ``firmware`` write by itself (the emulation overrides)."""
