"""Host client <-> board agent over real TCP sockets on loopback (loopback backend)."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from firmware import protocol as P
from firmware.agent import Agent, AgentConfig, LoopbackBackend, read_frame
from host.client import AgentClient, RemoteError

TOKEN = "s3cret-token"


@pytest.fixture
def agent():
    a = Agent(LoopbackBackend(), AgentConfig(TOKEN, max_payload=1 << 20, timeout_s=5))
    srv = a.server("127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_infer_round_trip_and_status(agent, seed):
    with AgentClient("127.0.0.1", agent, TOKEN) as c:
        assert c.hello.meta["backend"] == "loopback"
        x = np.random.default_rng(seed).integers(-128, 127, (4, 1, 8, 8), endpoint=True)
        y, cycles = c.infer(x, "fix8")
        assert np.array_equal(y, x) and cycles == 0
        assert c.status()["inferences"] == 1


def test_wrong_token_is_refused(agent):
    with pytest.raises(RemoteError, match="auth"):
        AgentClient("127.0.0.1", agent, "wrong")


def test_bad_requests_get_one_error_frame_and_the_agent_keeps_serving(agent):
    with AgentClient("127.0.0.1", agent, TOKEN) as c:
        with pytest.raises(RemoteError, match="bad_tensor"):
            c.request(P.Kind.INFER, {"shape": [2, 2], "dtype": "fix8"}, b"\0" * 3)
        with pytest.raises(RemoteError, match="bad_request"):
            c.request(P.Kind.INFER, {"dtype": "fix8"})
        with pytest.raises(RemoteError, match="unexpected"):
            c.request(P.Kind.RESULT)
        y, _ = c.infer(np.array([[1, -2]]), "fix32")  # still serving this connection
        assert y.tolist() == [[1, -2]]


def test_oversized_frame_and_mid_frame_disconnect(agent):
    with AgentClient("127.0.0.1", agent, TOKEN) as c:
        c.sock.sendall(P.HEADER.pack(P.MAGIC, P.PROTOCOL_VERSION, int(P.Kind.INFER), 0, 9,
                                     2 << 20))
        reply = read_frame(c.sock, 1 << 20)
        assert reply.kind is P.Kind.ERROR and reply.meta["code"] == "too_large"
    # a client that dies halfway through a frame must not take the agent down
    s = socket.create_connection(("127.0.0.1", agent))
    s.sendall(P.Frame(P.Kind.HELLO, 1, {"token": TOKEN}).encode()[:10])
    s.close()
    with AgentClient("127.0.0.1", agent, TOKEN) as c:
        assert c.status()["backend"] == "loopback"


def test_unreachable_agent_is_a_clear_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectionError, match="cannot reach the agent"):
        AgentClient("127.0.0.1", port, TOKEN, timeout_s=2)
