"""Random ShiftAdd ResNets, not only digits and ResNet-20, through quantization, the compiler
and the RTL: bit-exact against the golden model, and with the streams never idle, the measured
cycles equal to the cycle model's (``sim/random_networks.py``; ``benchmarks/random_networks.py``
runs many more)."""

from __future__ import annotations

import pytest

from gen.compile import Geometry
from gen.numerics import Precision
from sim.random_networks import draw, run

# two or three draws per engine build; between them: 1, 3 and 17 input channels (17: several
# words per pixel), widths 3 and 33 (no multiple of the columns or the lanes), 1 to 3 stages,
# a 1x1 input, odd maps halved (7 -> 4, 3 -> 2), final pools over 3x3 and 7x7 (areas no power
# of two), 2 to 20 classes, shift exponents over 0..k for k from 0 to 7; 2x6x3: FIX8 words of
# 48 bits, narrower than their two beats, and three lanes
GROUPS = {
    "fix8-2x6x3": (Precision.FIX8, Geometry(rows=2, cols=6, lanes=3), (5, 28)),
    "fix8-3x8x4": (Precision.FIX8, Geometry(rows=3, cols=8, lanes=4), (8, 0, 15)),
    "fix32-2x8x4": (Precision.FIX32, Geometry(rows=2, cols=8, lanes=4), (9, 7)),
}


def test_the_draws_cover_what_the_zoo_does_not():
    configs = [draw(s, max_size=8).config for _, _, seeds in GROUPS.values() for s in seeds]
    assert {1, 3, 17} <= {c.in_channels for c in configs}
    widths = {w for c in configs for w in c.widths}
    assert {3, 33} <= widths and any(w % 8 for w in widths)
    assert {1, 2, 3} == {len(c.widths) for c in configs}
    assert min(c.input_size for c in configs) == 1
    assert {3, 7} <= {c.pool for c in configs}  # pools that divide by a larger power of two
    assert any(c.input_size % 2 and len(c.widths) > 1 for c in configs)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_random_networks_in_rtl(group):
    precision, geo, seeds = GROUPS[group]
    outcomes, _ = run([draw(s, max_size=8) for s in seeds], precision, geo)
    for o in outcomes:
        assert o.ok, o.to_json()
        assert o.images == 3
        assert o.exact_cycles, (o.cycles, o.model_cycles)
        assert len(o.cycles_idle) == 3
        # outputs that vary: a network whose ReLUs output only zeros would hide a wrong datapath
        assert o.distinct_outputs >= min(10, 3 * o.config.num_classes // 2), o.to_json()
