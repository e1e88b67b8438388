"""The host side of the wire protocol: one connection to a board agent.

The protocol and the tensor packing are imported from ``firmware`` so both ends share one
definition. The higher-level ``Board`` API (``host/board.py``: deploy, quantize inputs from the
manifest, infer, status, reset) builds on it.
"""

from __future__ import annotations

import itertools
import socket

import numpy as np

from firmware import protocol as P
from firmware import tensors as T
from firmware.agent import read_frame


class RemoteError(RuntimeError):
    """The agent answered with an ERROR frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"agent error {code}: {message}")
        self.code = code


# said when the very first exchange fails: the port may hold something else, or nothing
NOT_AN_AGENT = ("; is a shiftadd agent listening there? (`shiftadd deploy` starts one on the "
                "board, `shiftadd board emulate` on this machine)")


HELLO_TIMEOUT_S = 10.0


class AgentClient:
    def __init__(self, host: str, port: int, token: str, *, timeout_s: float = 30.0,
                 max_payload: int = P.DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.address, self.timeout_s = f"{host}:{port}", timeout_s
        self._ids = itertools.count(1)
        self._broken: str | None = None  # why the connection can no longer be used
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as e:
            raise ConnectionError(f"cannot reach the agent at {host}:{port}: {e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            # an agent answers HELLO at once (outside its device lock): waiting the long
            # timeout, meant for LOAD and INFER, would only delay saying nothing answers
            self._timeout(min(timeout_s, HELLO_TIMEOUT_S))
            self.hello = self.request(P.Kind.HELLO, {"token": token, "client": "shiftadd-host"})
            self._timeout(timeout_s)
        except BaseException:
            self.sock.close()
            raise

    def _timeout(self, seconds: float) -> None:
        self.sock.settimeout(seconds)
        self.timeout_s = seconds

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, kind: P.Kind, meta: dict | None = None, blob: bytes = b"") -> P.Frame:
        """Send one request and read its reply. A reply that does not come in time, a closed
        connection or bytes that are no frame end the connection (a later reply could be
        taken for the next request's): each says where and in which request it happened."""
        if self._broken:
            raise ConnectionError(f"the connection to the agent at {self.address} broke "
                                  f"earlier ({self._broken}); connect again")
        req = next(self._ids)
        hint = NOT_AN_AGENT if kind is P.Kind.HELLO else ""
        try:
            self.sock.sendall(P.Frame(kind, req, meta or {}, blob).encode())
            reply = read_frame(self.sock, self.max_payload)
        except TimeoutError:
            self._break("no reply")
            raise TimeoutError(f"no reply from the agent at {self.address} to {kind.name} "
                               f"within {self.timeout_s:g} s{hint}") from None
        except P.ProtocolError as e:
            self._break(e.code)
            raise P.ProtocolError(e.code, f"{self.address} answered {kind.name} with "
                                          f"{e.message}{hint}") from None
        except OSError as e:
            self._break(str(e) or type(e).__name__)
            raise ConnectionError(f"the connection to the agent at {self.address} failed "
                                  f"during {kind.name}: {e}{hint}") from None
        if reply.kind is P.Kind.ERROR:
            raise RemoteError(str(reply.meta.get("code")), str(reply.meta.get("message")))
        if reply.req_id != req:
            raise P.ProtocolError("bad_reply", f"reply to request {reply.req_id}, sent {req}")
        return reply

    def _break(self, why: str) -> None:
        self._broken = why
        self.sock.close()

    def infer(self, x: np.ndarray, precision: str, build_id: str | None = None
              ) -> tuple[np.ndarray, int]:
        """Integer tensor in, integer tensor and device cycles out; with ``build_id`` (hex),
        only on that design (else the agent's error ``wrong_build``)."""
        meta = {"shape": list(x.shape), "dtype": precision}
        if build_id is not None:
            meta["build_id"] = build_id
        r = self.request(P.Kind.INFER, meta, T.pack(x, precision))
        shape = T.check_shape(P.require(r.meta, "shape", list))
        return T.unpack(r.blob, shape, P.require(r.meta, "dtype", str)), int(r.meta["cycles"])

    def status(self) -> dict:
        return self.request(P.Kind.STATUS).meta
