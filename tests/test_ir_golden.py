"""The integer network (IR) and the golden model on whole quantized networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gen import checkpoint
from gen.evaluate import calibration_batch, quantize_input
from gen.ir import AdderConv, IntegerNetwork, IRError, ShiftConv
from gen.nn.data import load_digits_splits
from gen.nn.models import build
from gen.numerics import Precision, round_real, signed_bits
from gen.quantize import quantize
from sim import golden


@pytest.fixture(scope="module", params=["fix8", "fix32"])
def digits_net(request, quick_digits):
    loaded = checkpoint.load(quick_digits)
    train, test = load_digits_splits()
    net = quantize(loaded.model, calibration_batch(train, loaded.normalization), request.param,
                   loaded.normalization, name="digits")
    x = quantize_input(net, loaded.normalization.apply(test.pixels[:64]))
    return net, x


def test_save_load_round_trip_is_identical(tmp_path, digits_net):
    net, x = digits_net
    p = tmp_path / "net.npz"
    net.save(p)
    back = IntegerNetwork.load(p)
    assert back.to_json() == net.to_json()
    assert np.array_equal(golden.run(back, x), golden.run(net, x))


def test_accumulator_widths_come_from_bounds(digits_net):
    net, x = digits_net
    bounds = net.bounds()
    env = golden.run(net, x, keep=True)
    for name in net.tensors:
        lo, hi = bounds[name]
        v = env[name]
        # every computed value lies inside its static per-channel bounds
        assert (v.min(axis=(0, 2, 3)) >= lo.astype(np.int64)).all(), name
        assert (v.max(axis=(0, 2, 3)) <= hi.astype(np.int64)).all(), name
    for op in net.ops:
        if isinstance(op, ShiftConv | AdderConv):
            lo, hi = bounds[op.output]
            need = signed_bits(min(lo.min(), 0), max(hi.max(), 0))
            assert net.tensors[op.output].fmt.bits == max(2, need)
    assert all(net.tensors[op.output].fmt.bits == net.precision.bits
               for op in net.ops if op.kind in ("requant", "add", "avgpool"))


@pytest.mark.parametrize("precision", ["fix8", "fix32"])
def test_the_pools_output_takes_a_format_of_its_own(trained_digits, precision):
    """The average pool's output (the means) takes its format from its own calibration peak,
    as every other activation does, not its input's (docs/NUMERICS.md, section 5): on the
    trained model that is a finer one, and never finer than the sum it divides."""
    from gen.numerics import pool_divisor_bits
    from gen.quantize import frac_for

    loaded = checkpoint.load(trained_digits)
    train, _ = load_digits_splits()
    net = quantize(loaded.model, calibration_batch(train, loaded.normalization), precision,
                   loaded.normalization)
    (pool,) = [op for op in net.ops if op.name == "avgpool"]
    fx = net.tensors[pool.inputs[0]].fmt.frac
    out = net.tensors[pool.output].fmt
    assert out.bits == Precision.parse(precision).bits
    assert out.frac == min(frac_for(net.meta["peaks"]["avgpool"], out.bits),
                           fx + pool_divisor_bits(pool.kernel))
    assert fx < out.frac


@pytest.mark.parametrize("precision", ["fix8", "fix32"])
def test_adder_weights_beyond_the_input_format_are_clipped_exactly(trained_digits, precision):
    """An adder conv's input format comes from its activations alone; its weights beyond the
    format are clipped to its ends (``gen/quantize.py: _Builder.adder_conv``). The input never
    lies beyond them, so on real inputs the accumulator is the unclipped weights' one plus a
    constant per channel, which the requant after it takes into its bias. Whether training
    leaves weights beyond the format depends on the machine (none at FIX8 on an Intel Xeon,
    2026-12-05; the AMD EPYC machines before passed the test, so had some), so two weights of
    each adder conv are set far beyond it first: the test never passes vacuously."""
    loaded = checkpoint.load(trained_digits)
    with torch.no_grad():
        for module in loaded.model.modules():
            if hasattr(module, "adder"):
                module.adder.view(-1)[0] = 1000.0
                module.adder.view(-1)[-1] = -1000.0
    train, test = load_digits_splits()
    net = quantize(loaded.model, calibration_batch(train, loaded.normalization), precision,
                   loaded.normalization)
    env = golden.run(net, quantize_input(net, loaded.normalization.apply(test.pixels[:32])),
                     keep=True)
    modules = dict(loaded.model.named_modules())
    clipped = 0
    for op in net.ops:
        if not isinstance(op, AdderConv):
            continue
        fmt = net.tensors[op.inputs[0]].fmt
        w = modules[op.name].adder.detach().double().numpy()
        whole = round_real(w, fmt.frac).astype(np.int64)
        assert np.array_equal(op.weight, np.clip(whole, fmt.lo, fmt.hi))
        offset = np.abs(whole - op.weight).reshape(len(whole), -1).sum(axis=1)
        clipped += int((offset > 0).sum())
        acc = golden.adder_conv(env[op.inputs[0]], whole, op.stride, op.padding)
        assert np.array_equal(acc, env[op.output] - offset[None, :, None, None])
    assert clipped >= 2 * sum(isinstance(op, AdderConv) for op in net.ops)


@pytest.mark.parametrize("kind", ["adder", "shift_exp", "shift_sign"])
def test_one_bit_weight_change_changes_output(digits_net, kind):
    """The golden model is sensitive to every weight bit it is given (this test can fail)."""
    net, x = digits_net
    base = golden.run(net, x, keep=True)
    doc, arrays = net.to_json(), {f"{op.name}/{a}": getattr(op, a).copy()
                                  for op in net.ops for a in op.arrays}
    if kind == "adder":
        op = next(o for o in net.ops if isinstance(o, AdderConv))
        arrays[f"{op.name}/weight"].flat[0] ^= 1
    else:
        op = next(o for o in net.ops if isinstance(o, ShiftConv) and o.exp_max > 0
                  and (o.sign != 0).any())
        i = int(np.flatnonzero(op.sign)[0])
        if kind == "shift_exp":
            e = arrays[f"{op.name}/exp"]
            e.flat[i] = e.flat[i] + 1 if e.flat[i] < op.exp_max else e.flat[i] - 1
        else:
            arrays[f"{op.name}/sign"].flat[i] *= -1
    changed = IntegerNetwork.from_json(json.loads(json.dumps(doc)), arrays)
    after = golden.run(changed, x, keep=True)
    assert not np.array_equal(after[op.output], base[op.output])


def test_resnet20_structure_quantizes_and_runs(seed):
    model = build("resnet20_shiftadd").eval()
    calib = torch.randn(8, 3, 32, 32)
    net = quantize(model, calib, Precision.FIX8, name="resnet20_shiftadd")
    kinds = [op.kind for op in net.ops]
    assert kinds.count("shift_conv") == 1 + 18 + 2 + 1   # conv1, 9 blocks x 2, 2 downsample, fc
    assert kinds.count("adder_conv") == 18 + 2
    assert kinds.count("add") == 9
    x = quantize_input(net, calib[:2].numpy())
    out = golden.run(net, x)
    assert out.shape == (2, 10, 1, 1)
    # run drops each tensor after its last reader (the residual operands live across a block);
    # keeping them all gives the same output
    assert np.array_equal(out, golden.run(net, x, keep=True)[net.output])


@pytest.mark.parametrize("size, pool", [(28, 7), (12, 3), (8, 2)])
def test_inputs_of_any_side_quantize_to_the_float_model(size, pool):
    """An MNIST-sized input (28 -> 14 -> 7) ends in a 7x7 pool: its sum is divided by 64, not
    49, and the quantizer folds 64/49 into bn2's requant. FIX32 keeps the float model's
    logits within a fraction of a percent; without the fold bn2 scales 49/64 of the fc's
    output (the 28 and 12 cases fail)."""
    from gen.nn.models import ResNetConfig, ShiftAddResNet, random_inputs, randomize

    cfg = ResNetConfig(in_channels=1, input_size=size, widths=(8, 12, 16), blocks=(1, 1, 1),
                       num_classes=5)
    assert cfg.pool == pool
    x = random_inputs(cfg, 64, 3)
    model = randomize(ShiftAddResNet(cfg).eval(), seed=3, calibration=x)
    with torch.no_grad():
        want = model(x).numpy().reshape(64, -1)
    net = quantize(model, x, Precision.FIX32, name="any-side")
    assert net.tensors["avgpool"].shape == (16, 1, 1)
    out = golden.run(net, quantize_input(net, x.numpy())).reshape(64, -1)
    got = out / 2.0 ** net.tensors[net.output].fmt.frac
    assert np.abs(got - want).max() < 0.01 * np.abs(want).max()


@pytest.mark.parametrize("calib, message", [
    (torch.zeros(4, 3, 8, 8), r"must be \[N, 1, 8, 8\], not \[4, 3, 8, 8\]"),
    (torch.zeros(0, 1, 8, 8), r"no inputs \(N = 0\)"),
    (torch.full((4, 1, 8, 8), float("nan")), "NaN or infinity"),
    (torch.tensor([0.0, float("inf")]).repeat(2, 1, 8, 4), "NaN or infinity"),
])
def test_unusable_calibration_data_is_refused(calib, message):
    """Calibration data the formats cannot be chosen from (a NaN once went through and gave a
    network) is refused with the reason."""
    with pytest.raises(ValueError, match=message):
        quantize(build("digits").eval(), calib, Precision.FIX8, name="digits")


def _valid_pair(net):
    return net.to_json(), {f"{op.name}/{a}": getattr(op, a).copy()
                           for op in net.ops for a in op.arrays}


@pytest.mark.parametrize("breakage,message", [
    (lambda d, a: a[next(k for k in a if k.endswith("/sign"))].flat.__setitem__(0, 2),
     "ternary"),
    (lambda d, a: a[next(k for k in a if k.endswith("/exp"))].flat.__setitem__(0, 15),
     "exponents"),
    (lambda d, a: a[next(k for k in a if k.endswith("/weight"))].flat.__setitem__(0, 2**40),
     "adder weights must lie"),
    (lambda d, a: a.pop(next(k for k in a if k.endswith("/mult"))), "is missing"),
    (lambda d, a: d["ops"].reverse(), "before it is produced"),
    (lambda d, a: d["ops"][0].__setitem__("kind", "conv"), "unknown op kind"),
    (lambda d, a: d.__setitem__("version", 99), "version 99"),
    (lambda d, a: d["tensors"][0].__setitem__("shape", [1, 8]), "shape must be 3"),
])
def test_malformed_networks_are_rejected(digits_net, breakage, message):
    net, _ = digits_net
    doc, arrays = _valid_pair(net)
    doc = json.loads(json.dumps(doc))
    breakage(doc, arrays)
    with pytest.raises(IRError, match=message):
        IntegerNetwork.from_json(doc, arrays)


def test_truncated_file_is_a_clear_error(tmp_path, digits_net):
    net, _ = digits_net
    p = tmp_path / "net.npz"
    net.save(p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(IRError, match="not a shiftadd integer network"):
        IntegerNetwork.load(p)


def test_predictions_on_threads_are_the_sequential_ones_in_order(quick_digits):
    """``integer_predictions`` runs batches on threads: the same predictions as one batch on
    one thread, and progress in order."""
    from gen.evaluate import integer_predictions

    loaded = checkpoint.load(quick_digits)
    train, test = load_digits_splits()
    net = quantize(loaded.model, calibration_batch(train, loaded.normalization), "fix8",
                   loaded.normalization, name="digits")
    x = loaded.normalization.apply(test.pixels[:100])
    want = golden.run(net, quantize_input(net, x)).reshape(100, -1).argmax(axis=1)
    heard: list[int] = []
    got = integer_predictions(net, x, batch=7, progress=heard.append, threads=3)
    assert np.array_equal(got, want)
    assert heard == [*range(7, 100, 7), 100]


def test_golden_threads_follow_the_cores_available(monkeypatch):
    import os

    from gen.evaluate import golden_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert golden_threads() == 1
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS has none
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert golden_threads() == 4
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert golden_threads() == 1


def test_agreement_is_the_share_of_inputs_given_the_float_class(quick_digits):
    """Against labels that are the float model's own predictions, each integer network's
    accuracy is its agreement (what ``eval`` reports), and the float model's is 100 %."""
    from gen.evaluate import evaluate_on, float_predictions

    loaded = checkpoint.load(quick_digits)
    train, test = load_digits_splits()
    calib = calibration_batch(train, loaded.normalization)
    x = loaded.normalization.apply(test.pixels)
    ref = float_predictions(loaded.model, x)
    res = evaluate_on(loaded, x, ref, calib, loaded.normalization)
    assert res.accuracies["float"] == 100.0
    for p in ("fix32", "fix8"):
        assert res.agreement[p] == res.accuracies[p]
    assert res.agreement["fix8"] < 100.0   # a case that tells agreement from accuracy
    labelled = evaluate_on(loaded, x, test.labels, calib, loaded.normalization)
    assert labelled.agreement == res.agreement
    assert labelled.accuracies["fix8"] != labelled.agreement["fix8"]
    assert set(labelled.to_json()["agreement"]) == {"fix32", "fix8"}


def test_ties_count_the_outputs_whose_largest_value_repeats():
    from gen.evaluate import ties

    out = np.array([[1, 5, 5, 0], [5, 1, 0, 0], [-3, -3, -4, -9], [7, 7, 7, 7], [0, 1, 2, 3]])
    assert ties(out) == 3
    assert ties(out[:, :, None, None]) == 3   # [N, C, 1, 1], as the network puts it out
    assert ties(out[[1, 4]]) == 0 and ties(np.zeros((0, 10))) == 0


def test_fidelity_benchmark_agrees_with_eval(quick_digits, monkeypatch):
    """``benchmarks/quant_fidelity.py`` predicts its own way (all 1,797 images, the golden
    model in one batch, the logits kept): on the test images its accuracies are ``eval``'s,
    and its class changes are what ``evaluate_on``'s agreement over all images leaves."""
    import sys
    from pathlib import Path

    from gen.evaluate import evaluate, evaluate_on, float_predictions

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("quant_fidelity", None)
    from quant_fidelity import measure

    row = measure(quick_digits, logit_bits=8)
    # its logits widened to 8 bits are the quantizer's own: the same format, the same rule
    assert row["fix8_logits8"] == row["fix8"]
    ev = evaluate(checkpoint.load(quick_digits))
    assert row["images"] == 1797
    assert row["float_test_accuracy"] == round(ev.accuracies["float"], 2)
    for p in ("fix32", "fix8"):
        assert row[p]["test_accuracy"] == round(ev.accuracies[p], 2)
        assert 0 <= row[p]["logit_error"] < 1
    loaded = checkpoint.load(quick_digits)
    train, test = load_digits_splits()
    x = loaded.normalization.apply(np.concatenate([train.pixels, test.pixels]))
    every = evaluate_on(loaded, x, float_predictions(loaded.model, x),
                        calibration_batch(train, loaded.normalization), loaded.normalization)
    for p in ("fix32", "fix8"):
        assert row[p]["differ"] == round(len(x) * (1 - every.agreement[p] / 100))
    assert row["fix8"]["differ"] > 0   # a case that can tell
