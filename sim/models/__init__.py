"""Clock-driven bus models for cocotb testbenches (AXI4-Stream / amaranth.lib.stream, AXI4-Lite).

cocotbext-axi 0.1.28 hangs under cocotb 2.1 + Verilator 5.048 here (its issue #93), so shiftadd
keeps one small set of its own, tested on their own in ``tests/test_rtl_models.py``.
"""
