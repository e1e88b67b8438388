"""The generated report's figure (``gen/plots.py``) and Markdown (tier A: pure Python)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from gen.generate import limited_by, report_markdown
from gen.plots import BAR_H, LEFT, RIGHT, WIDTH, report_svg, ticks, track_of
from gen.report import plural

SVG = "{http://www.w3.org/2000/svg}"


def _report() -> dict:
    layers = [
        {"name": "input", "op": "input", "cycles": 70, "us": 0.35, "start": 0, "end": 70},
        {"name": "c1.0", "op": "shift_conv", "cycles": 300, "us": 1.5, "start": 70, "end": 370,
         "lane_ops": 1, "utilization": 0.9},
        {"name": "c1.1", "op": "adder_conv+add", "cycles": 310, "us": 1.55, "start": 76,
         "end": 470, "lane_ops": 1, "utilization": 0.42},
        {"name": "fc <&> \"x\"", "op": "shift_conv", "cycles": 30, "us": 0.15, "start": 480,
         "end": 510, "lane_ops": 1, "utilization": 0.01,
         "ceilings": {"rows": 0.1, "columns": 0.625, "lanes": 1.0, "writes": 0.4}},
        {"name": "output", "op": "output", "cycles": 10, "us": 0.05, "start": 510, "end": 520},
    ]
    return {"model": "m", "precision": "fix8", "board": "zc706", "clock_mhz": 200.0,
            "sizing": "the fastest geometry within 9 LUTs",
            "array": {"rows": 2, "cols": 8, "lanes": 4, "shift_range": 7,
                      "acc_bits": {"shift": 20}},
            "resources_model": {"luts": {"shift_array": 10, "core": 5}, "luts_total": 15,
                                "lut_share": 0.1, "bram36_total": 1.0, "dsp": 16,
                                "bram36": {"activations": 1.0, "program": 0}},
            "cycles_per_image": 520, "latency_us": 2.6, "images_per_s": 1.0,
            "energy": {"pj_per_image": 1.0, "mac_equivalent_pj_per_image": 2.0, "saving": 0.5,
                       "source": "s"},
            "layers": layers}


def _rects(svg: str, cls: str) -> list[dict]:
    root = ET.fromstring(svg)
    return [r.attrib | {"title": r.find(f"{SVG}title").text}
            for r in root.iter(f"{SVG}rect") if r.get("class") == cls]


def test_each_layer_is_one_bar_on_its_arrays_track_at_its_cycles():
    rep = _report()
    svg = report_svg(rep)
    bars = _rects(svg, "layer")
    assert [b["data-name"] for b in bars] == ['c1.0', 'fc <&> "x"', 'c1.1', 'input', 'output']
    plot_w = WIDTH - LEFT - RIGHT
    tracks = {}
    for b in bars:
        x = next(x for x in rep["layers"] if x["name"] == b["data-name"])
        assert float(b["x"]) == pytest.approx(LEFT + plot_w * x["start"] / 520, abs=0.01)
        assert float(b["width"]) == pytest.approx(plot_w * (x["end"] - x["start"]) / 520,
                                                  abs=0.02)
        assert f"{x['cycles']} cycles" in b["title"]
        tracks.setdefault(track_of(x["op"]), set()).add(b["y"])
    # one row per track: shift array, adder array, stream / vector
    assert {k: len(v) for k, v in tracks.items()} == {"shift array": 1, "adder array": 1,
                                                      "stream / vector": 1}
    assert len({next(iter(v)) for v in tracks.values()}) == 3


def test_utilization_bars_are_proportional_and_only_for_convs():
    bars = _rects(report_svg(_report()), "util")
    assert [b["data-name"] for b in bars] == ["c1.0", "c1.1", 'fc <&> "x"']
    for b, u in zip(bars, (0.9, 0.42, 0.01), strict=True):
        assert float(b["height"]) == pytest.approx(BAR_H * u, abs=0.01)
        assert f"{100 * u:.1f} % PE utilization" in b["title"]


def test_ticks_are_round_and_cover_the_axis():
    assert ticks(520) == list(range(0, 501, 100))
    assert ticks(25598) == list(range(0, 25001, 5000))
    assert ticks(7) == list(range(8))
    assert ticks(0) == [0]


def test_markdown_shows_the_figure_and_the_synthesized_blocks_when_present():
    rep = _report()
    md = report_markdown(rep)
    assert "(report.svg)" in md and "LUTs (synthesized)" not in md
    assert "; the fastest geometry within 9 LUTs\n" in md  # how the array was sized
    rep["resources_synth"] = {"tool": "yosys", "note": "n", "seconds": 1.0, "core": None,
                              "blocks": {"shift_array": {"lut": 8, "ff": 3, "carry4": 2,
                                                         "dsp": 0, "parts": {}}}}
    md = report_markdown(rep)
    assert "| shift array PEs | 10 | 8 | +25.0 % | 3 | 2 | 0 |" in md
    assert "| engine core (feeders, writers, control, the registers between the PEs) | 5 | " \
           "(model only) |" in md


def test_limited_by_names_the_ceilings_below_95_percent_lowest_first_and_the_rest():
    fc = _report()["layers"][3]  # utilization 0.01 of a 0.025 product: the rest is 40 %
    assert limited_by(fc) == "rows 10 %, writes 40 %, columns 62 %, fill and waits 40 %"
    # 94 % of a 96 % ceiling: the rest (98 %) is not worth naming either
    assert limited_by({"utilization": 0.94, "ceilings": {"rows": 0.96, "writes": 1.0}}) == "-"
    assert limited_by({"utilization": 0.5, "ceilings": {"rows": 0.96, "writes": 1.0}}) \
        == "fill and waits 52 %"
    assert limited_by({"utilization": 0.9, "ceilings": {"rows": 0.9, "writes": 1.0}}) \
        == "rows 90 %"
    assert limited_by(_report()["layers"][0]) == ""  # not a conv
    md = report_markdown(_report())
    assert "| PE utilization | limited by |" in md
    assert "| 1.0 % | rows 10 %, writes 40 %, columns 62 %, fill and waits 40 % |" in md


def test_the_block_ram_is_given_per_memory():
    md = report_markdown(_report())
    assert "BRAM36: 1.0 (activations 1.0), DSP48: 16" in md  # memories without any left out


def test_reports_without_their_own_layout_print_plain_key_value_lines(capsys):
    """``emit`` without a human layout (``board status``, the benchmarks): nested values read
    as words, not Python's repr; ``--json`` stays one object."""
    from gen.report import emit

    obj = {"last_run": {"cycles": 1820, "busy": 1820}, "errors": [],
           "array": {"acc_bits": {"adder": 18, "shift": 21}, "cols": 16}, "inferences": 3}
    emit(obj, False)
    assert capsys.readouterr().out.splitlines() == [
        "last_run    cycles 1820, busy 1820",
        "errors      -",
        "array       acc_bits (adder 18, shift 21), cols 16",
        "inferences  3"]
    emit(obj, True)
    assert json.loads(capsys.readouterr().out) == obj


def test_counts_take_the_plural_their_noun_takes():
    assert [plural(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert [plural(n, "mismatch", "mismatches") for n in (0, 1, 3)] == [
        "0 mismatches", "1 mismatch", "3 mismatches"]
    assert plural(1, "mismatching image") == "1 mismatching image"
