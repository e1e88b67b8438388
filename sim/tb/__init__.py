"""cocotb testbenches (run through ``sim.rtl.run`` under pytest, never on their own)."""
