"""The wire protocol and tensor packing: round trips, every malformed case, and fuzzing."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware import protocol as P
from firmware import tensors as T

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20) |
    st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
frames = st.builds(P.Frame, kind=st.sampled_from(list(P.Kind)),
                   req_id=st.integers(0, 2**32 - 1),
                   meta=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
                   blob=st.binary(max_size=300))


@given(frames)
def test_round_trip(frame):
    data = frame.encode()
    back = P.decode(data)
    assert (back.kind, back.req_id, back.meta, back.blob) == \
        (frame.kind, frame.req_id, frame.meta, frame.blob)
    kind, req, length = P.parse_header(data[:P.HEADER.size])
    assert P.parse_payload(kind, req, data[P.HEADER.size:]) == back
    assert length == len(data) - P.HEADER.size


def header(magic=P.MAGIC, version=P.PROTOCOL_VERSION, kind=int(P.Kind.OK), flags=0, req=7,
           length=4):
    return P.HEADER.pack(magic, version, kind, flags, req, length)


@pytest.mark.parametrize("data,code", [
    (header(magic=b"NOPE") + b"\0" * 4, "bad_magic"),
    (header(version=9) + b"\0" * 4, "bad_version"),
    (header(kind=77) + b"\0" * 4, "bad_kind"),
    (header(flags=1) + b"\0" * 4, "bad_flags"),
    (header(length=P.DEFAULT_MAX_PAYLOAD + 1), "too_large"),
    (header(length=2) + b"\0\0", "truncated"),
    (header()[:10], "truncated"),
    (header(length=8) + b"\0" * 4, "truncated"),
    (header() + b"\0" * 5, "trailing"),
    (header(length=8) + struct.pack("<I", 99) + b"{}  ", "bad_meta"),
    (header(length=9) + struct.pack("<I", 5) + b"nope!", "bad_meta"),
    (header(length=7) + struct.pack("<I", 3) + b"NaN", "bad_meta"),
    (header(length=6) + struct.pack("<I", 2) + b"[]", "bad_meta"),
    (header(length=6) + struct.pack("<I", 2) + b"\xff\xfe", "bad_meta"),
])
def test_malformed_frames_have_stable_codes(data, code):
    with pytest.raises(P.ProtocolError) as e:
        P.decode(data)
    assert e.value.code == code


def test_receiver_limit_and_require():
    data = P.Frame(P.Kind.INFER, 1, {"shape": [1, 2]}, b"x" * 100).encode()
    with pytest.raises(P.ProtocolError, match="too_large"):
        P.decode(data, max_payload=50)
    meta = P.decode(data).meta
    assert P.require(meta, "shape", list) == [1, 2]
    with pytest.raises(P.ProtocolError, match="missing field 'dtype'"):
        P.require(meta, "dtype", str)
    with pytest.raises(P.ProtocolError, match="wrong type"):
        P.require({"n": True}, "n", int)
    with pytest.raises(P.ProtocolError, match="meta_too_large"):
        P.Frame(P.Kind.OK, 0, {"x": "y" * (P.MAX_META + 1)}).encode()


def _text(rng, n: int) -> str:
    alphabet = "abc\"\\{}[]:,0 \n\té€𝄞"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(n + 1)))


def _json(rng, depth: int = 0):
    r = rng.random()
    if depth < 3 and r < 0.15:
        return [_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 3 and r < 0.3:
        return {_text(rng, 8): _json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return rng.choice([None, True, False, rng.randrange(-(2**53), 2**53), _text(rng, 20),
                       rng.uniform(-1e300, 1e300)])


def _damaged_frame(rng) -> bytes:
    """A random valid frame with one byte replaced, cut short or extended; or random bytes, bare
    or behind a valid header (so that the payload decoder sees them)."""
    meta = {_text(rng, 10): _json(rng) for _ in range(rng.randrange(5))}
    data = P.Frame(rng.choice(list(P.Kind)), rng.randrange(2**32), meta,
                   rng.randbytes(rng.randrange(300))).encode()
    r = rng.random()
    if r < 0.4:
        i = rng.randrange(len(data))
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
    if r < 0.6:
        return data[:rng.randrange(len(data))]
    if r < 0.7:
        return data + rng.randbytes(rng.randrange(1, 16))
    junk = rng.randbytes(rng.randrange(65))
    if r < 0.85:
        return junk
    return header(kind=int(rng.choice(list(P.Kind))), length=len(junk)) + junk


def test_fuzzed_frames_never_crash_the_decoder(seed):
    """20,000 damaged and random frames: a Frame or a ProtocolError, nothing else. (A seeded
    loop: 10,000 examples through Hypothesis took 50-90 s of the suite, this takes about 2.)"""
    rng = random.Random(seed)
    outcomes = {"frame": 0, "error": 0}
    for _ in range(20_000):
        data = _damaged_frame(rng)
        try:
            f = P.decode(data)
        except P.ProtocolError as e:
            assert e.code, data
            outcomes["error"] += 1
        except Exception as e:
            raise AssertionError(f"{type(e).__name__}: {e} on {data!r}") from e
        else:
            assert isinstance(f.meta, dict) and isinstance(bytes(f.blob), bytes)
            outcomes["frame"] += 1
    assert min(outcomes.values()) > 1_000, outcomes  # both paths exercised


@given(st.sampled_from(["fix8", "fix32"]), st.lists(st.integers(1, 5), min_size=1, max_size=4),
       st.data())
def test_tensor_round_trip(precision, shape, data):
    info = np.iinfo(T.DTYPES[precision])
    n = int(np.prod(shape))
    vals = np.array(data.draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n,
                                       max_size=n)), dtype=np.int64).reshape(shape)
    packed = T.pack(vals, precision)
    assert len(packed) == n * T.DTYPES[precision].itemsize
    got = T.unpack(packed, shape, precision)
    assert got.dtype == T.DTYPES[precision] and np.array_equal(got, vals)


def test_tensor_errors():
    with pytest.raises(T.TensorError, match="range"):
        T.pack(np.array([128]), "fix8")
    with pytest.raises(T.TensorError, match="integers"):
        T.pack(np.array([0.5]), "fix8")
    with pytest.raises(T.TensorError, match="expected 8"):
        T.unpack(b"\0" * 7, [2, 1], "fix32")
    with pytest.raises(T.TensorError, match="shape"):
        T.unpack(b"", [-1], "fix8")
    with pytest.raises(T.TensorError, match="precision"):
        T.pack(np.array([1]), "fix16")
    assert T.pack(np.array([-1, 1]), "fix32") == b"\xff\xff\xff\xff\x01\x00\x00\x00"


def test_activation_words_round_trip_and_refuse_overflow(seed):
    """``to_words``/``from_words``: the manifest's layout (HWC, channels padded to whole words)."""
    rng = np.random.default_rng(seed)
    for precision, cols, shape in (("fix8", 16, (3, 4, 5)), ("fix32", 8, (17, 2, 2))):
        info = np.iinfo(T.dtype_for(precision))
        x = rng.integers(info.min, info.max + 1, size=shape)
        data = T.to_words(x, cols, precision)
        assert len(data) == 4 * 5 * 16 if precision == "fix8" else len(data) == 2 * 2 * 24 * 4
        assert np.array_equal(T.from_words(data, shape, cols, precision), x)
        hwc = np.frombuffer(data, T.dtype_for(precision)).reshape(shape[1], shape[2], -1)
        assert not hwc[:, :, shape[0]:].any()  # padding channels are zero
    with pytest.raises(T.TensorError, match="range"):
        T.to_words(np.full((1, 1, 1), 128), 16, "fix8")
    with pytest.raises(T.TensorError, match="not the words"):
        T.from_words(b"\0" * 15, (1, 1, 1), 16, "fix8")


def test_a_batch_packs_as_its_images_one_after_another(seed):
    """``to_words`` of ``[N, C, H, W]`` with a header: each image's header beat and words, as
    the one-image call gives them, one after another (the driver's frames of a batch);
    ``from_words(..., count)`` takes them apart again."""
    rng = np.random.default_rng(seed)
    for precision, cols, shape, beats in (("fix8", 16, (3, 4, 5), 1), ("fix32", 8, (17, 2, 2),
                                                                         None)):
        info = np.iinfo(T.dtype_for(precision))
        x = rng.integers(info.min, info.max + 1, size=(4, *shape))
        header = 0x53484149
        batch = T.to_words(x, cols, precision, beats, header=header)
        one = [np.array([header], "<u4").tobytes() + T.to_words(img, cols, precision, beats)
               for img in x]
        assert batch == b"".join(one)
        words = T.to_words(x, cols, precision)
        assert np.array_equal(T.from_words(words, shape, cols, precision, 4), x)
        assert np.array_equal(T.from_words(words[:len(words) // 4], shape, cols, precision),
                              x[0])
    with pytest.raises(T.TensorError, match="are not the words of 3 tensors of"):
        T.from_words(words, shape, cols, precision, 3)
    # an empty batch (an INFER of [0, C, H, W]) is no frame and no result
    assert T.to_words(x[:0], cols, precision, header=1) == b""
    assert T.from_words(b"", shape, cols, precision, 0).shape == (0, *shape)
    with pytest.raises(T.TensorError, match=r"\[C, H, W\] or \[N, C, H, W\]"):
        T.to_words(np.zeros((1, 1, 2, 2, 2), np.int8), 16, "fix8")


def test_input_words_cut_to_their_beats(seed):
    """``to_words(..., word_beats)``: each word's first beats only (the INPUT op's ``in_beats``);
    they carry every real channel, and a count that would drop one is refused."""
    from gen.compile import input_beats

    rng = np.random.default_rng(seed)
    for precision, cols, c, want in (("fix8", 16, 3, 1), ("fix8", 16, 6, 2), ("fix32", 8, 3, 3),
                                     ("fix8", 16, 16, 4), ("fix8", 16, 20, 4)):
        bits = 8 if precision == "fix8" else 32
        assert input_beats(c, cols, bits) == want
        info = np.iinfo(T.dtype_for(precision))
        x = rng.integers(info.min, info.max + 1, size=(c, 3, 2))
        full = T.to_words(x, cols, precision)
        cut = T.to_words(x, cols, precision, want)
        words = len(full) // (cols * bits // 8)
        assert len(cut) == words * want * 4
        per_word = np.frombuffer(full, np.uint8).reshape(words, -1)
        assert cut == per_word[:, :want * 4].tobytes()
        assert not per_word[:, want * 4:].any()  # what is not sent is zero padding
    with pytest.raises(T.TensorError, match="cannot carry"):
        T.to_words(np.ones((6, 2, 2), np.int64), 16, "fix8", 1)
    with pytest.raises(T.TensorError, match="cannot carry"):
        T.to_words(np.ones((3, 2, 2), np.int64), 16, "fix8", 5)


def test_words_narrower_than_a_beat_take_whole_beats(seed):
    """A FIX8 word of fewer than 4 channels a beat (``--cols`` 1, 2, 3, 5, 6, ...) still takes
    whole 32-bit beats on the stream, its high bytes zero: the bytes equal the beats
    ``hw.program.words_to_beats`` makes of the words (the engine's own split), and
    ``from_words`` reads them back."""
    from gen.compile import input_beats
    from hw.program import words_to_beats

    rng = np.random.default_rng(seed)
    for cols, c in ((1, 3), (2, 3), (3, 3), (5, 7), (6, 3), (6, 16)):
        x = rng.integers(-128, 128, size=(2, c, 3, 2))
        padded = np.zeros((2, 3, 2, -(-c // cols) * cols), np.int64)
        padded[..., :c] = np.transpose(x, (0, 2, 3, 1))
        lanes = (padded.reshape(-1, cols) & 0xFF).astype(object)
        words = [sum(int(v) << (8 * i) for i, v in enumerate(w)) for w in lanes]
        beats = words_to_beats(words, cols * 8)
        data = T.to_words(x, cols, "fix8")
        assert data == np.asarray(beats, "<u4").tobytes(), (cols, c)
        assert np.array_equal(T.from_words(data, (c, 3, 2), cols, "fix8", 2), x)
        want = input_beats(c, cols, 8)
        per_word = len(beats) // len(words)
        cut = T.to_words(x, cols, "fix8", want)
        if want < per_word:
            first = np.asarray(beats, "<u4").reshape(len(words), per_word)[:, :want]
            assert cut == first.tobytes(), (cols, c)
        else:
            assert cut == data
