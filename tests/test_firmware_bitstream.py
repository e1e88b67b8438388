"""Bitstream conversion (.bit -> swapped .bin) and the firmware's dependency rule."""

from __future__ import annotations

import ast
import struct
import sys
from pathlib import Path

import pytest

from firmware.bitstream import (
    PREAMBLE,
    SYNC,
    SYNC_SWAPPED,
    BitstreamError,
    bit_to_bin,
    parse_bit,
    swap32,
)


def make_bit(data: bytes, part: str = "7z045ffg900") -> bytes:
    def field(tag: str, text: str) -> bytes:
        b = text.encode() + b"\0"
        return tag.encode() + struct.pack(">H", len(b)) + b

    return (PREAMBLE + field("a", "shiftadd_top;UserID=0XFFFFFFFF") + field("b", part) +
            field("c", "2026/11/22") + field("d", "07:00:00") + b"e" +
            struct.pack(">I", len(data)) + data)


DATA = b"\xff" * 16 + b"\x00\x00\x00\xbb\x11\x22\x00\x44" + b"\xff" * 8 + SYNC + \
    b"\x20\x00\x00\x00" * 4


def test_parse_and_convert():
    bit = parse_bit(make_bit(DATA))
    assert bit.part == "7z045ffg900" and bit.design.startswith("shiftadd_top")
    out = bit_to_bin(make_bit(DATA))
    assert len(out) == len(DATA)
    assert SYNC_SWAPPED in out and out[:4] == b"\xff" * 4
    assert out[16:24] == b"\xbb\x00\x00\x00\x44\x00\x22\x11"  # each word reversed
    assert swap32(out) == DATA


@pytest.mark.parametrize("raw,message", [
    (b"not a bitstream at all", "preamble"),
    (make_bit(DATA)[:40], "truncated|missing"),
    (make_bit(DATA)[:-3], "truncated"),
    (make_bit(DATA[:-2]), "whole 32-bit words"),
    (make_bit(b"\0" * 32), "sync word"),
    (make_bit(b"\0\0" + DATA[:-2]), "between words: the data is shifted"),
    (PREAMBLE + b"b\x00\x01\x00", "'a' missing"),
])
def test_bad_files_are_clear_errors(raw, message):
    with pytest.raises(BitstreamError, match=message):
        bit_to_bin(raw)


def test_firmware_uses_only_stdlib_and_numpy():
    """firmware/ runs on the board's Python: standard library + numpy, nothing else — except
    ``pynq``, which PYNQ images provide and which is imported only inside the function that
    uses it (``--udmabuf pynq``), never at module level."""
    allowed = set(sys.stdlib_module_names) | {"numpy", "firmware"}
    for path in (Path(__file__).resolve().parents[1] / "firmware").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level: no optional packages
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""]
                assert not any(n.split(".")[0] == "pynq" for n in names), path.name
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for n in names:
                assert n.split(".")[0] in allowed | {"pynq"}, f"{path.name} imports {n}"
