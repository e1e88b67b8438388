"""Xilinx ``.bit`` -> byte-swapped ``.bin`` for the Linux FPGA manager (standard library only).

A ``.bit`` file is a header of tagged fields followed by the configuration data::

    00 09  0f f0 0f f0 0f f0 0f f0 00  00 01          fixed preamble (13 bytes)
    'a' u16 len  design name (NUL-terminated)
    'b' u16 len  part name          'c' u16 len  date      'd' u16 len  time
    'e' u32 len  configuration data (contains the sync word AA 99 55 66)

Zynq-7000's FPGA manager under Linux wants the data with every 32-bit word byte-swapped (so the
sync word reads ``66 55 99 AA``); Vivado's own ``-bin_file`` output is not swapped.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

PREAMBLE = bytes.fromhex("0009 0ff00ff00ff00ff0 00 0001".replace(" ", ""))
SYNC = bytes.fromhex("aa995566")
SYNC_SWAPPED = bytes.fromhex("665599aa")


class BitstreamError(ValueError):
    """A file that is not a usable Xilinx bitstream; the message says what is wrong."""


@dataclass(frozen=True)
class BitFile:
    design: str
    part: str
    date: str
    time: str
    data: bytes


def build_bit(data: bytes, design: str = "shiftadd_top;UserID=0XFFFFFFFF",
              part: str = "7z045ffg900", date: str = "2026/11/22", time: str = "00:00:00") -> bytes:
    """A ``.bit`` container around configuration ``data`` (what Vivado writes; the emulated
    board and the tests build stand-in bitstreams with it)."""
    def field(tag: str, text: str) -> bytes:
        b = text.encode() + b"\0"
        return tag.encode() + struct.pack(">H", len(b)) + b

    return (PREAMBLE + field("a", design) + field("b", part) + field("c", date) +
            field("d", time) + b"e" + struct.pack(">I", len(data)) + data)


def parse_bit(raw: bytes) -> BitFile:
    if not raw.startswith(PREAMBLE):
        raise BitstreamError("not a Xilinx .bit file (preamble missing)")
    pos = len(PREAMBLE)
    fields: dict[str, str] = {}
    for tag in "abcd":
        if pos + 3 > len(raw) or raw[pos:pos + 1] != tag.encode():
            raise BitstreamError(f"header field {tag!r} missing or out of order at byte {pos}")
        (n,) = struct.unpack_from(">H", raw, pos + 1)
        if pos + 3 + n > len(raw):
            raise BitstreamError(f"header field {tag!r} is truncated")
        fields[tag] = raw[pos + 3:pos + 3 + n].rstrip(b"\0").decode("ascii", "replace")
        pos += 3 + n
    if pos + 5 > len(raw) or raw[pos:pos + 1] != b"e":
        raise BitstreamError("configuration data field 'e' missing")
    (n,) = struct.unpack_from(">I", raw, pos + 1)
    data = raw[pos + 5:pos + 5 + n]
    if len(data) != n:
        raise BitstreamError(f"truncated: header announces {n} bytes of data, file has "
                             f"{len(data)}")
    if n % 4:
        raise BitstreamError(f"configuration data of {n} bytes is not whole 32-bit words")
    if not has_sync(data):
        raise BitstreamError("no sync word (AA 99 55 66) at a 32-bit word boundary of the "
                             "configuration data" + (" (one between words: the data is "
                                                     "shifted)" if SYNC in data else ""))
    return BitFile(fields["a"], fields["b"], fields["c"], fields["d"], data)


def has_sync(data: bytes, sync: bytes = SYNC) -> bool:
    """Whether ``sync`` stands in ``data`` at a 32-bit word boundary: the configuration
    logic reads words, and Zynq's FPGA-manager driver (``zynq_fpga_has_sync``) looks only
    there, so a sync word between words means a file shifted by a few bytes."""
    at = data.find(sync)
    while at >= 0 and at % 4:
        at = data.find(sync, at + 1)
    return at >= 0


def swap32(data: bytes) -> bytes:
    if len(data) % 4:
        raise BitstreamError("data is not whole 32-bit words")
    out = bytearray(len(data))
    out[0::4], out[1::4], out[2::4], out[3::4] = data[3::4], data[2::4], data[1::4], data[0::4]
    return bytes(out)


def bit_to_bin(raw: bytes) -> bytes:
    """The FPGA-manager ``.bin`` for a ``.bit`` file: header stripped, 32-bit words swapped."""
    return swap32(parse_bit(raw).data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
