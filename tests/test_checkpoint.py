"""Import of official ShiftAddNet / AdderNet checkpoints and of shiftadd's own format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from gen import checkpoint
from gen.checkpoint import CheckpointError
from gen.nn.data import Normalization
from gen.nn.models import PRESETS, ResNetConfig, ShiftAddResNet, build


def official_state(arch="resnet20_shiftadd", raw=False, model=None, shift_min=-14):
    """A state dict laid out like the official repository's, of ``model`` or else of a new
    ``arch`` (deployable unless raw: shift exponents rounded within ``shift_min``..0)."""
    model = build(arch) if model is None else model
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    if not raw:
        for k in sd:
            if k.endswith(".shift"):
                sd[k] = torch.round(torch.clamp(sd[k], shift_min, 0))
            elif k.endswith(".sign"):
                sd[k] = torch.sign(torch.round(sd[k]))
    for k in sd:  # make BN non-trivial so a wrong mapping would show in the outputs
        if k.endswith("running_var"):
            sd[k] = torch.rand_like(sd[k]) + 0.5
        elif k.endswith("running_mean"):
            sd[k] = torch.randn_like(sd[k])
    return sd


def save(tmp_path, obj, name="ckpt.pt"):
    p = tmp_path / name
    torch.save(obj, p)
    return p


def test_official_layout_names():
    keys = set(build("resnet20_shiftadd").state_dict())
    for k in ("conv1.shift", "conv1.sign", "layer2.0.conv1.0.shift", "layer2.0.conv1.0.sign",
              "layer2.0.conv1.1.adder", "layer2.0.downsample.0.shift",
              "layer2.0.downsample.1.adder", "layer2.0.downsample.2.running_var",
              "fc.shift", "fc.sign", "bn2.weight", "layer3.2.bn2.bias"):
        assert k in keys, k
    assert build("resnet20_shiftadd").state_dict()["fc.shift"].shape == (10, 64, 1, 1)


@pytest.mark.parametrize("wrap", ["full", "raw", "module_prefix", "legacy_weight"])
def test_import_official_variants(tmp_path, seed, wrap):
    sd0 = official_state()
    sd = dict(sd0)
    if wrap == "module_prefix":
        sd = {f"module.{k}": v for k, v in sd.items()}
    if wrap == "legacy_weight":
        sd = {(k.removesuffix(".adder") + ".weight" if k.endswith(".adder") else k): v
              for k, v in sd.items()}
    obj = {"epoch": 160, "state_dict": sd, "best_prec1": 91.2, "optimizer": {}} \
        if wrap != "raw" else sd
    loaded = checkpoint.load(save(tmp_path, obj))
    assert loaded.arch == "resnet20_shiftadd"
    ref = build("resnet20_shiftadd")
    ref.load_state_dict(sd0)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.model(x), ref.eval()(x))


def fixed_shift_state(sd: dict) -> dict:
    """``sd`` as ShiftAddNet's fixed-shift variant stores it: every shift layer an SEConv2d with
    ``weight = sign * 2^shift`` and its training state ``p``, ``s`` and ``mask``."""
    out = {}
    for k, v in sd.items():
        mod, _, leaf = k.rpartition(".")
        if leaf == "sign":
            continue
        if leaf == "shift":
            w = sd[f"{mod}.sign"] * torch.exp2(v)
            out.update({f"{mod}.weight": w, f"{mod}.p": v.clone(), f"{mod}.s": torch.rand_like(v),
                        f"{mod}.mask": (w != 0).float()})
        else:
            out[k] = v
    return out


def test_import_the_fixed_shift_variant(tmp_path, seed):
    """A resnet20_shiftadd_se checkpoint (SEConv2d shift layers: weight = 0 or +-2^k) loads as
    the same network; a weight that is no power of two is an error naming it, which
    --round-shift-params rounds as SEConv2d does (nearest power of two, zero below 5e-3)."""
    sd0 = official_state()
    se = fixed_shift_state(sd0)
    assert "layer2.0.downsample.0.weight" in se and "fc.p" in se and "conv1.shift" not in se
    ref = build("resnet20_shiftadd")
    ref.load_state_dict(sd0)
    x = torch.randn(2, 3, 32, 32)
    loaded = checkpoint.load(save(tmp_path, {"epoch": 200, "state_dict": se, "best_prec1": 92.0}))
    assert torch.equal(loaded.model(x), ref.eval()(x))

    off = dict(se)
    w = off["layer1.1.conv2.0.weight"].clone()
    w[0, 0, 0, 0], w[0, 0, 0, 1], w[0, 0, 0, 2] = 0.3, -0.0049, 0.75  # 0.25, 0, 1 (a tie: up)
    off["layer1.1.conv2.0.weight"] = w
    p = save(tmp_path, {"state_dict": off}, "off.pt")
    with pytest.raises(CheckpointError, match=r"'layer1.1.conv2.0.weight' holds 0.3 at index "
                                              r"\[0, 0, 0, 0\]: .*--round-shift-params"):
        checkpoint.load(p)
    m = checkpoint.load(p, round_shift_params=True).model.layer1[1].conv2[0]
    assert m.shift[0, 0, 0, :3].tolist() == [-2.0, 0.0, 0.0]
    assert m.sign[0, 0, 0, :3].tolist() == [1.0, 0.0, 1.0]

    big = dict(se)
    big["fc.weight"] = big["fc.weight"].clone()
    big["fc.weight"][3, 5, 0, 0] = -2.0
    with pytest.raises(CheckpointError, match=r"'fc.weight' holds -2 .*above 1"):
        checkpoint.load(save(tmp_path, {"state_dict": big}, "big.pt"), round_shift_params=True)


def test_deepshift_q_layers_round_as_their_forward_does(tmp_path, seed):
    """A shift layer stored as a bare float ``weight`` (DeepShift-Q's Conv2dShiftQ, or a conv
    train.py left unconverted) is an error naming both; --round-shift-params applies
    DeepShift-Q's rounding: |w| clamped to 1, then 2^round(log2 |w|)."""
    sd0 = official_state()
    mod = "layer2.1.conv2.0"
    shift, sign = sd0[f"{mod}.shift"], sd0[f"{mod}.sign"]
    jitter = torch.rand_like(shift) * 0.98 - 0.49  # within half an octave: rounds back
    w = sign * torch.exp2(shift + jitter)
    w[0, 0, 0, :3] = torch.tensor([1.7, 2 ** -2.4, -(2 ** -3.6)])  # 1 (clamped), 2^-2, -2^-4
    sd = {k: v for k, v in sd0.items() if not k.startswith(f"{mod}.")}
    sd[f"{mod}.weight"] = w
    p = save(tmp_path, {"state_dict": sd})
    with pytest.raises(CheckpointError, match=rf"'{mod}.weight' holds .*DeepShift-Q layer "
                                              r".*--round-shift-params does the same; or a "
                                              r"convolution train.py left unconverted"):
        checkpoint.load(p)
    loaded = checkpoint.load(p, round_shift_params=True).model.layer2[1].conv2[0]
    want_shift, want_sign = shift.clone(), sign.clone()
    want_shift[0, 0, 0, :3] = torch.tensor([0.0, -2.0, -4.0])
    want_sign[0, 0, 0, :3] = torch.tensor([1.0, 1.0, -1.0])
    assert torch.equal(loaded.sign, want_sign)
    assert torch.equal(loaded.sign * torch.exp2(loaded.shift), want_sign * torch.exp2(want_shift))

    w[1, 0, 0, 0] = 2 ** -15  # DeepShift-Q's floor at --weight_bits 5
    with pytest.raises(CheckpointError, match=r"2\^-15 is below the shift lanes' range "
                                              r"2\^-14\.\.2\^0 \(DeepShift-Q with"):
        checkpoint.load(save(tmp_path, {"state_dict": sd}, "floor.pt"), round_shift_params=True)


def test_the_depth_widths_and_classes_come_from_the_tensors(tmp_path, seed):
    """ShiftAddNet's ``resnet110_shiftadd_se`` (18 blocks per stage) trained on CIFAR-100 loads
    as what it is; a block missing from the middle of a stage is named."""
    import dataclasses

    config = dataclasses.replace(PRESETS["resnet20_shiftadd"], blocks=(18, 18, 18),
                                 num_classes=100)
    ref = build("resnet20_shiftadd", config).eval()
    sd = official_state(model=ref, shift_min=-7)
    ref.load_state_dict(sd)
    se = {f"module.{k}": v for k, v in fixed_shift_state(sd).items()}
    loaded = checkpoint.load(save(tmp_path, {"epoch": 160, "state_dict": se}))
    assert loaded.model.config == config and loaded.meta["config_from_tensors"]
    assert loaded.description == "resnet20_shiftadd (blocks 18,18,18, num classes 100)"
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.model(x), ref(x))

    gap = {k: v for k, v in se.items() if not k.startswith("module.layer2.7.")}
    with pytest.raises(CheckpointError, match=r"missing key 'layer2\.7\.bn1\.bias' \(and \d+ "
                                              r"more\) of a resnet20_shiftadd model of 3 stages "
                                              r"\(widths 16,32,64, blocks 18,18,18\) and 100 "
                                              r"classes"):
        checkpoint.load(save(tmp_path, {"state_dict": gap}, "gap.pt"))


def test_the_input_channels_come_from_the_tensors_and_the_side_from_the_user(tmp_path):
    """An official model of one input channel loads as one (conv1's tensor tells), and on
    28x28 inputs when told (no tensor holds the side; CIFAR's 32 is assumed). A shiftadd
    checkpoint records its side: another one is an error."""
    import dataclasses

    config = dataclasses.replace(PRESETS["resnet20_shiftadd"], in_channels=1, input_size=28)
    ref = build("resnet20_shiftadd", config).eval()
    sd = official_state(model=ref, shift_min=-7)
    ref.load_state_dict(sd)
    p = save(tmp_path, {"state_dict": sd})
    assumed = checkpoint.load(p)
    assert assumed.model.config == dataclasses.replace(config, input_size=32)
    assert assumed.meta["input_size_assumed"]
    assert "pass --input-size 28" in assumed.input_hint((5, 1, 28, 28))
    assert assumed.input_hint((5, 3, 28, 28)) == ""  # not the channels: no side would help
    told = checkpoint.load(p, input_size=28)
    assert told.model.config == config and "input_size_assumed" not in told.meta
    assert told.description == "resnet20_shiftadd (in channels 1, input size 28)"
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(told.model(x), ref(x))

    ours = tmp_path / "ours.pt"
    checkpoint.save(ours, told.model, "resnet20_shiftadd", None, {}, {})
    assert checkpoint.load(ours, input_size=28).model.config == config
    with pytest.raises(CheckpointError, match=r"trained on 28x28 inputs \(the checkpoint "
                                              r"records it\), not 32x32"):
        checkpoint.load(ours, input_size=32)


def test_import_fix8_and_sparse_adder_layers(tmp_path, seed):
    """ShiftAddNet's FIX8 training (``--add_quant True``) gives every Adder2D an input
    quantizer's running statistics, and ``sparsity`` a mask it applies in every forward pass:
    the statistics are dropped, the mask applied."""
    sd0 = official_state()
    sd = dict(sd0)
    adders = [k.removesuffix(".adder") for k in sd if k.endswith(".adder")]
    for mod in adders:
        sd[f"{mod}.quantize_input_fw.running_zero_point"] = torch.randn(1, 1, 1, 1)
        sd[f"{mod}.quantize_input_fw.running_range"] = torch.rand(1, 1, 1, 1)
    mod = "layer2.1.conv1.1"
    mask = (torch.rand_like(sd[f"{mod}.adder"]) > 0.3).float()
    sd[f"{mod}.s"], sd[f"{mod}.adder_mask"] = torch.rand_like(mask), mask
    loaded = checkpoint.load(save(tmp_path, {"state_dict": sd}))
    ref = build("resnet20_shiftadd")
    ref.load_state_dict({**sd0, f"{mod}.adder": sd0[f"{mod}.adder"] * mask})
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.model(x), ref.eval()(x))
    assert torch.equal(loaded.model.layer2[1].conv1[1].adder, sd0[f"{mod}.adder"] * mask)


@pytest.mark.parametrize("mutate,message", [
    (lambda sd: sd.pop("layer2.0.conv1.1.adder"), "missing key 'layer2.0.conv1.1.adder'"),
    (lambda sd: sd.__setitem__("layer9.0.extra", torch.zeros(1)), "unknown key 'layer9.0.extra'"),
    (lambda sd: sd.__setitem__("layer1.0.conv2.1.adder", torch.zeros(16, 16, 1, 1)),
     "'layer1.0.conv2.1.adder' has shape"),
    (lambda sd: sd["layer1.1.conv1.0.shift"].__setitem__((0, 0, 0, 0), -2.5),
     "'layer1.1.conv1.0.shift' holds -2.5"),
    (lambda sd: sd["layer1.1.conv1.0.shift"].__setitem__((0, 0, 0, 0), -15.0),
     "'layer1.1.conv1.0.shift' holds -15"),
    (lambda sd: sd["fc.sign"].__setitem__((3, 0, 0, 0), 0.4), "'fc.sign' holds 0.4"),
    (lambda sd: sd["layer3.0.bn1.weight"].__setitem__(0, float("nan")),
     "'layer3.0.bn1.weight' contains NaN"),
])
def test_bad_checkpoints_name_the_key(tmp_path, mutate, message):
    sd = official_state()
    mutate(sd)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        checkpoint.load(save(tmp_path, {"state_dict": sd}))


def test_headerless_checkpoint_of_another_arch_points_at_arch(tmp_path):
    """A state dict without shiftadd's header is read as resnet20_shiftadd, in the layout its
    tensors hold: digits' (one input channel, two stages) loads as that member of the family,
    on the assumed 32x32 inputs; --arch digits loads it as digits, on 8x8. A state that is no
    member of the family gets its key errors with --arch named."""
    sd = build("digits").state_dict()
    p = save(tmp_path, {"state_dict": sd})
    loaded = checkpoint.load(p, round_shift_params=True)
    assert loaded.arch == "resnet20_shiftadd" and loaded.model.config.input_size == 32
    assert loaded.description == ("resnet20_shiftadd (in channels 1, widths 16,32, blocks 1,1)")
    digits = checkpoint.load(p, "digits", round_shift_params=True)
    assert digits.arch == "digits" and digits.model.config == PRESETS["digits"]
    sd["conv1.shift"] = sd["conv1.shift"][:, :, :2]  # a 3x2 stem: not this family's
    p = save(tmp_path, {"state_dict": sd}, "other.pt")
    with pytest.raises(CheckpointError, match="for a resnet20_shiftadd model .*unless --arch"):
        checkpoint.load(p, round_shift_params=True)


def test_raw_training_state_needs_explicit_rounding(tmp_path):
    sd = official_state(raw=True)
    p = save(tmp_path, {"state_dict": sd})
    with pytest.raises(CheckpointError, match="--round-shift-params"):
        checkpoint.load(p)
    loaded = checkpoint.load(p, round_shift_params=True)
    want = torch.round(torch.clamp(sd["layer1.0.conv1.0.shift"], -14, 0))
    assert torch.equal(loaded.model.layer1[0].conv1[0].shift.detach(), want)
    assert set(loaded.model.fc.sign.detach().unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    for text in (b"this is not a checkpoint", b"hello\n", b"\x00\x01 binary"):
        junk.write_bytes(text)
        with pytest.raises(CheckpointError, match=r"junk.pt: not a PyTorch checkpoint \(neither "
                                                  r"torch.save's zip archive nor a pickle"):
            checkpoint.load(junk)
    with pytest.raises(CheckpointError, match="no such file"):
        checkpoint.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="state dict"):
        checkpoint.load(save(tmp_path, {"state_dict_wrong": 1, "x": "y"}))
    (tmp_path / "run.pt").mkdir()
    with pytest.raises(CheckpointError, match="run.pt: a directory, not a checkpoint file"):
        checkpoint.load(tmp_path / "run.pt")
    np.savez(tmp_path / "net.npz", a=np.zeros(3))  # torch.load's words were an archive's
    with pytest.raises(CheckpointError, match=r"net.npz: an .npz \(an integer network, from "
                                              r"`shiftadd quantize`\?\), not a PyTorch"):
        checkpoint.load(tmp_path / "net.npz")


class Evil:
    def __reduce__(self):
        return (print, ("executed!",))


@pytest.mark.parametrize("protocol,message", [
    (2, r"pickles a Python object \(print\)"),  # torch.save's protocol: the object is named
    (4, r"not a loadable PyTorch checkpoint \(Unsupported operand 149\)"),
])
def test_pickled_code_is_refused(tmp_path, capsys, protocol, message):
    """weights_only=True: a checkpoint carrying arbitrary objects is rejected, not executed."""
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f, protocol=protocol)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(p)
    assert "executed!" not in capsys.readouterr().out


def test_numpy_numbers_of_official_training_scripts_load(tmp_path):
    """The official ShiftAddNet train.py saves ``best_prec1 = np.round(...)``, a numpy float64,
    from PyTorch 1.4 (the file format before zip) and numpy 1 (``numpy.core``): such files load,
    in both formats and under both numpy's names, and meta holds plain Python numbers."""
    sd = official_state()
    obj = {"epoch": np.int64(160), "state_dict": sd, "best_prec1": np.round(np.float64(91.7339), 2),
           "history": np.zeros((2, 4)), "optimizer": {}}
    zipped = save(tmp_path, obj, "zip.pt")
    legacy = tmp_path / "legacy.pt"
    torch.save(obj, legacy, _use_new_zipfile_serialization=False)
    numpy1 = tmp_path / "numpy1.pt"
    data = legacy.read_bytes()
    assert b"numpy._core.multiarray" in data
    numpy1.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    ref = build("resnet20_shiftadd")
    ref.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32)
    for p in (zipped, legacy, numpy1):
        loaded = checkpoint.load(p)
        assert loaded.meta["best_prec1"] == 91.73 and type(loaded.meta["best_prec1"]) is float
        assert loaded.meta["epoch"] == 160 and type(loaded.meta["epoch"]) is int
        assert torch.equal(loaded.model(x), ref.eval()(x))


@pytest.mark.parametrize("content,message", [
    (b"", "empty or cut short"),
    (b"\x80\x02}q\x00(X", "not a loadable PyTorch checkpoint"),
])
def test_empty_or_cut_files_say_so(tmp_path, content, message):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(p)


def test_a_zip_checkpoint_cut_short_says_so(tmp_path):
    """torch's reader words a truncated archive by where it was cut ("failed finding central
    directory", or "[Errno 22] Invalid argument"); the error says what happened to the file."""
    whole = save(tmp_path, {"state_dict": official_state()})
    data = whole.read_bytes()
    for n in (100, 5000, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{n}.pt"
        p.write_bytes(data[:n])
        with pytest.raises(CheckpointError, match="zip archive cut short or damaged"):
            checkpoint.load(p)
    checkpoint.load(whole)


def test_a_pickled_model_is_refused_with_the_fix(tmp_path):
    """A checkpoint holding a whole model object (DeepShift's trainer saves ``'model'``) is
    refused without running its code, naming the class and what to save instead."""
    p = save(tmp_path, {"state_dict": official_state(), "model": torch.nn.ReLU()})
    with pytest.raises(CheckpointError, match=r"torch\.nn\.modules\.activation\.ReLU.*"
                                              r"save model\.state_dict\(\)"):
        checkpoint.load(p)


def test_shiftadd_format_round_trip(tmp_path, seed):
    model = build("digits")
    norm = Normalization(0.3, 0.4)
    p = tmp_path / "d.pt"
    checkpoint.save(p, model, "digits", norm, {"float_test_accuracy": 1.0}, {"name": "x"})
    loaded = checkpoint.load(p)
    assert loaded.arch == "digits" and loaded.normalization == norm
    assert loaded.model.config == PRESETS["digits"]
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(loaded.model(x), model.eval()(x))  # saved shift params are the rounded ones
    with pytest.raises(CheckpointError, match="holds a 'digits' model"):
        checkpoint.load(p, arch="resnet20_shiftadd")


def test_a_failed_save_keeps_the_old_checkpoint_and_leaves_no_temporary(tmp_path, monkeypatch):
    model = build("digits")
    norm = Normalization(0.3, 0.4)
    p = tmp_path / "d.pt"
    checkpoint.save(p, model, "digits", norm, {"v": 1}, {"name": "x"})
    before = p.read_bytes()

    def full_disk(obj, f, *a, **k):
        with open(f, "wb") as out:
            out.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(p, model, "digits", norm, {"v": 2}, {"name": "x"})
    assert p.read_bytes() == before and sorted(q.name for q in tmp_path.iterdir()) == ["d.pt"]
    monkeypatch.undo()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        checkpoint.save(tmp_path, model, "digits", norm, {}, {})
    # no normalization (random weights): recorded as such
    checkpoint.save(p, model, "digits", None, {}, {})
    assert checkpoint.load(p).normalization is None


@pytest.mark.parametrize("size, pool", [(6, 2), (12, 3), (2, 1), (0, None)])
def test_a_config_of_any_input_side_loads(tmp_path, size, pool):
    """Three stages halve the side twice, an odd side rounding up (6 -> 3 -> 2, 12 -> 6 -> 3):
    the model pools what is left, to one logit per class. A side of 0 is refused when the
    checkpoint is read, naming the field."""
    p = tmp_path / "d.pt"
    config = ResNetConfig(in_channels=1, input_size=max(size, 1), widths=(16, 32, 64),
                          blocks=(1, 1, 1), num_classes=10)
    checkpoint.save(p, ShiftAddResNet(config), "resnet20_shiftadd", None, {}, {})
    obj = torch.load(p, weights_only=True)
    obj["config"]["input_size"] = size
    torch.save(obj, p)
    if pool is None:
        with pytest.raises(CheckpointError, match="input_size must be at least 1, not 0"):
            checkpoint.load(p)
        return
    model = checkpoint.load(p).model.eval()
    assert model.config.pool == pool
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10)


def _corrupt(sd: dict, k: str, how: int) -> None:
    v = sd.pop(k)
    if how == 0:
        sd[k] = v.reshape(-1)
    elif how == 1:
        sd[k] = torch.tensor(3.0)
    elif how == 2:
        sd[k] = v.to(torch.int64)
    elif how == 3:
        sd[k] = "x"
    elif how == 4:
        sd[k] = v[..., :1] if v.ndim else v
    elif how == 5:
        sd[f"module.{k}"] = v
    elif how == 6:
        sd[k.replace("layer2", "layer7")] = v
    elif how == 7:
        sd[k.replace(".0.", ".5.")] = v
    # how == 8: dropped


def test_corrupted_official_state_dicts_give_one_line_errors(tmp_path, seed):
    """Random corruptions of official state dicts (keys dropped, moved to another stage, block
    or prefix; tensors flattened, cut, made scalars, integers or strings) load or are refused
    with a one-line CheckpointError; nothing else escapes."""
    import random

    rnd = random.Random(seed)
    bases = [official_state(), fixed_shift_state(official_state())]
    for _ in range(40):
        sd = dict(rnd.choice(bases))
        for _ in range(rnd.randint(1, 3)):
            _corrupt(sd, rnd.choice(list(sd)), rnd.randrange(9))
        p = save(tmp_path, {"state_dict": sd})
        for round_shift_params in (False, True):
            try:
                checkpoint.load(p, round_shift_params=round_shift_params)
            except CheckpointError as e:
                assert "\n" not in str(e)
