"""The AXI4-Lite register file in Verilator, driven by the AXI-Lite master model with random
delays on every channel; plus the register map declaration's own checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw.regfile import RegisterFile
from hw.regmap import REGMAP, Access, Field, Register, RegisterMap
from sim import rtl


def test_regfile_over_axi_lite(seed):
    build_id = 0xC0FFEE42
    build = rtl.build(lambda: RegisterFile(build_id), "regfile", {"build_id": build_id})
    rtl.run(build, "sim.tb.regfile_tb", {"build_id": build_id}, seed=seed)


def test_register_doc_is_generated_from_the_declaration():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "REGISTERS.md").read_text()
    assert REGMAP.markdown() in doc


def test_regmap_declaration():
    assert REGMAP["CTRL"].address == 0x00  # ap_ctrl_hs
    assert [f.name for f in REGMAP["CTRL"].fields] == ["ap_start", "ap_done", "ap_idle",
                                                       "ap_ready"]
    doc = REGMAP.to_json()
    assert doc["registers"][0]["fields"][0]["access"] == "w1s"
    assert "| 0x00 | CTRL | ap_start | 0 | w1s |" in REGMAP.markdown()
    with pytest.raises(ValueError, match="overlaps"):
        Register("X", 0x40, (Field("a", 0, 4, Access.RW, ""), Field("b", 3, 1, Access.RW, "")), "")
    with pytest.raises(ValueError, match="aligned"):
        Register("X", 0x41, (), "")
    with pytest.raises(ValueError, match="share an address"):
        RegisterMap((Register("A", 0, (), ""), Register("B", 0, (), "")))
