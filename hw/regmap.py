"""The accelerator's register map, declared once.

The same declaration drives the AXI4-Lite register file (:mod:`hw.regfile`), the manifest
(``to_json``), the firmware (which reads the manifest, never hard-coded offsets) and the docs
(``markdown``). Plain Python: no Amaranth needed to read it.

Control follows Vivado HLS's ``ap_ctrl_hs`` at 0x00 so that standard drivers recognise it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Access(enum.Enum):
    RO = "ro"     # read only
    RW = "rw"     # read/write
    W1C = "w1c"   # read; writing 1 clears the bit
    COR = "cor"   # read; cleared by the read (clear-on-read)
    W1S = "w1s"   # write 1 to set; the hardware clears it (e.g. ap_start when accepted)


@dataclass(frozen=True)
class Field:
    name: str
    bit: int
    width: int
    access: Access
    doc: str

    def __post_init__(self) -> None:
        if not 0 <= self.bit < 32 or self.width < 1 or self.bit + self.width > 32:
            raise ValueError(f"field {self.name!r}: bits {self.bit}+{self.width} outside 0..31")

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.bit


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    fields: tuple[Field, ...]
    doc: str

    def __post_init__(self) -> None:
        if self.address % 4:
            raise ValueError(f"register {self.name!r}: address {self.address:#x} not word-aligned")
        used = 0
        for f in self.fields:
            if used & f.mask:
                raise ValueError(f"register {self.name!r}: field {f.name!r} overlaps another")
            used |= f.mask

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")


def _word(name: str, access: Access, doc: str) -> tuple[Field, ...]:
    return (Field(name, 0, 32, access, doc),)


MAGIC = 0x53484144  # "SHAD"
VERSION = 0x0001_0001  # major 1, minor 1 of this register map (1.1: IMAGES)
IMAGES_BITS = 16  # the IMAGES register's count: up to 65,535 INFER frames per start

ERROR_BITS = ("bad_descriptor", "bad_length", "overflow")


@dataclass(frozen=True)
class RegisterMap:
    registers: tuple[Register, ...]

    def __post_init__(self) -> None:
        addrs = [r.address for r in self.registers]
        if len(set(addrs)) != len(addrs):
            raise ValueError("two registers share an address")
        names = [r.name for r in self.registers]
        if len(set(names)) != len(names):
            raise ValueError("two registers share a name")

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"no register {name!r}")

    @property
    def address_bits(self) -> int:
        return max(r.address for r in self.registers).bit_length()

    def to_json(self) -> dict:
        return {"magic": MAGIC, "version": VERSION, "registers": [
            {"name": r.name, "address": r.address, "doc": r.doc,
             "fields": [{"name": f.name, "bit": f.bit, "width": f.width,
                         "access": f.access.value, "doc": f.doc} for f in r.fields]}
            for r in self.registers]}

    def markdown(self) -> str:
        lines = ["| address | register | field | bits | access | meaning |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for r in self.registers:
            for f in r.fields:
                bits = f"{f.bit}" if f.width == 1 else f"{f.bit + f.width - 1}:{f.bit}"
                lines.append(f"| {r.address:#04x} | {r.name} | {f.name} | {bits} | "
                             f"{f.access.value} | {f.doc} |")
        return "\n".join(lines)


REGMAP = RegisterMap((
    Register("CTRL", 0x00, (
        Field("ap_start", 0, 1, Access.W1S, "write 1 to start the program; reads 1 until "
                                            "the engine accepts it"),
        Field("ap_done", 1, 1, Access.COR, "the program finished (cleared by reading)"),
        Field("ap_idle", 2, 1, Access.RO, "the engine is idle"),
        Field("ap_ready", 3, 1, Access.COR, "the engine accepted a start (cleared by reading)"),
    ), "ap_ctrl_hs control"),
    Register("ID", 0x10, _word("magic", Access.RO, f"{MAGIC:#010x} ('SHAD')"),
             "identifies a shiftadd accelerator"),
    Register("VERSION", 0x14, _word("version", Access.RO, "register map version (major << 16 | "
                                                          "minor)"), "register map version"),
    Register("BUILD_ID", 0x18, _word("build_id", Access.RO, "first 32 bits of the build's "
                                                            "sha256 (manifest: build_id)"),
             "which generated design this is"),
    Register("STATUS", 0x1C, (
        Field("busy", 0, 1, Access.RO, "a program is running"),
        Field("error", 1, 1, Access.RO, "an ERROR bit is set"),
    ), "status"),
    Register("ERROR", 0x20, tuple(
        Field(name, i, 1, Access.W1C, f"{name.replace('_', ' ')} (write 1 to clear)")
        for i, name in enumerate(ERROR_BITS)), "sticky error bits"),
    Register("CYCLES_LO", 0x24, _word("value", Access.RO, "cycles since the last start, low "
                                                          "word"), "total cycles"),
    Register("CYCLES_HI", 0x28, _word("value", Access.RO, "high word (latched when LO is read)"),
             "total cycles"),
    Register("BUSY_LO", 0x2C, _word("value", Access.RO, "cycles the engine was busy since the "
                                                        "last start, low word"), "busy cycles"),
    Register("BUSY_HI", 0x30, _word("value", Access.RO, "high word (latched when LO is read)"),
             "busy cycles"),
    Register("IMAGES", 0x34, (
        Field("count", 0, IMAGES_BITS, Access.RW, "INFER frames one start runs, back to back "
                                                  "(0 or 1: one); TLAST ends only the last "
                                                  "frame and the last result"),
    ), "images per start"),
))
