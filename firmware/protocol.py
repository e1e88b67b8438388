"""The host <-> board wire protocol, defined once (the host imports it from here).

Python 3 standard library only: this file runs on the ZC706's ARM Linux.

A frame is a 16-byte header followed by a payload::

    magic   4 bytes  b"SHAD"
    version u8       PROTOCOL_VERSION
    kind    u8       a Kind
    flags   u16      0 (reserved)
    req_id  u32      echoed in the reply
    length  u32      payload bytes (<= the receiver's limit)

The payload is ``u32 meta_len | meta (UTF-8 JSON object) | blob (raw bytes)``: small structured
fields go in the JSON object (parsed with ``json``, never ``pickle`` or ``eval``), tensors in the
blob. Every malformed input raises :class:`ProtocolError` with a stable ``code``; nothing else.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field

MAGIC = b"SHAD"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<4sBBHII")
META_LEN = struct.Struct("<I")
DEFAULT_MAX_PAYLOAD = 256 << 20   # 256 MiB: a batch of FIX32 images with room to spare
MAX_META = 1 << 20                # 1 MiB of JSON is far more than any request needs


class Kind(enum.IntEnum):
    HELLO = 1      # meta: {"token", "client"}            -> HELLO_OK {"version", "agent", ...}
    HELLO_OK = 2
    LOAD = 3       # meta: {"manifest"}, blob: weights+program  -> OK
    INFER = 4      # meta: {"shape", "dtype"[, "build_id"]}, blob: tensor -> RESULT
    RESULT = 5     # meta: {"shape", "dtype", "cycles"}, blob: tensor
    STATUS = 6     #                                            -> STATUS_OK {...}
    STATUS_OK = 7
    RESET = 8      #                                            -> OK
    OK = 9
    ERROR = 15     # meta: {"code", "message"}


class ProtocolError(Exception):
    """A malformed or unacceptable frame. ``code`` is stable; the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Frame:
    kind: Kind
    req_id: int = 0
    meta: dict = field(default_factory=dict)
    blob: bytes | bytearray | memoryview = b""  # decoded frames hold a view of the payload

    def encode(self) -> bytes:
        return encode(self)


def encode(frame: Frame) -> bytes:
    meta = json.dumps(frame.meta, separators=(",", ":"), allow_nan=False).encode()
    if len(meta) > MAX_META:
        raise ProtocolError("meta_too_large", f"{len(meta)} bytes of metadata (limit {MAX_META})")
    payload_len = META_LEN.size + len(meta) + len(frame.blob)
    if payload_len > 0xFFFF_FFFF:
        raise ProtocolError("too_large", f"payload of {payload_len} bytes")
    return b"".join((HEADER.pack(MAGIC, PROTOCOL_VERSION, int(frame.kind), 0,
                                 frame.req_id & 0xFFFF_FFFF, payload_len),
                     META_LEN.pack(len(meta)), meta, frame.blob))


def parse_header(header: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> tuple[Kind, int, int]:
    """Validate a 16-byte header; returns ``(kind, req_id, payload_length)``."""
    if len(header) != HEADER.size:
        raise ProtocolError("truncated", f"header of {len(header)} bytes, need {HEADER.size}")
    magic, version, kind, flags, req_id, length = HEADER.unpack(header)
    if magic != MAGIC:
        raise ProtocolError("bad_magic", f"not a shiftadd frame (magic {magic!r})")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {version}, this side speaks "
                                           f"{PROTOCOL_VERSION}")
    try:
        kind = Kind(kind)
    except ValueError:
        raise ProtocolError("bad_kind", f"unknown frame kind {kind}") from None
    if flags:
        raise ProtocolError("bad_flags", f"reserved flags set ({flags:#x})")
    if length > max_payload:
        raise ProtocolError("too_large", f"payload of {length} bytes exceeds the limit of "
                                         f"{max_payload}")
    if length < META_LEN.size:
        raise ProtocolError("truncated", f"payload of {length} bytes has no metadata length")
    return kind, req_id, length


def parse_payload(kind: Kind, req_id: int, payload: bytes | memoryview) -> Frame:
    payload = memoryview(payload)
    if len(payload) < META_LEN.size:
        raise ProtocolError("truncated", "payload shorter than its metadata length field")
    (meta_len,) = META_LEN.unpack(payload[:META_LEN.size])
    if meta_len > MAX_META or META_LEN.size + meta_len > len(payload):
        raise ProtocolError("bad_meta", f"metadata length {meta_len} does not fit the payload")
    raw = bytes(payload[META_LEN.size:META_LEN.size + meta_len])
    try:
        meta = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant) if raw else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError("bad_meta", f"metadata is not JSON ({type(e).__name__})") from None
    if not isinstance(meta, dict):
        raise ProtocolError("bad_meta", "metadata must be a JSON object")
    return Frame(kind, req_id, meta, payload[META_LEN.size + meta_len:])


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def decode(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """Decode exactly one whole frame from ``data`` (trailing bytes are an error)."""
    kind, req_id, length = parse_header(bytes(data[:HEADER.size]), max_payload)
    if len(data) != HEADER.size + length:
        raise ProtocolError("truncated" if len(data) < HEADER.size + length else "trailing",
                            f"frame of {len(data)} bytes, header says {HEADER.size + length}")
    return parse_payload(kind, req_id, memoryview(data)[HEADER.size:])


def error_frame(req_id: int, code: str, message: str) -> Frame:
    return Frame(Kind.ERROR, req_id, {"code": code, "message": message})


def require(meta: dict, key: str, types: type | tuple[type, ...]):
    """A required metadata field of the given type(s), or a ProtocolError naming it."""
    if key not in meta:
        raise ProtocolError("bad_request", f"missing field {key!r}")
    v = meta[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):
        raise ProtocolError("bad_request", f"field {key!r} has the wrong type")
    return v
