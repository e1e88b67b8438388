"""Host <-> agent streaming throughput over loopback TCP, with the device replaced by a memory
loop (``LoopbackBackend``): this measures the protocol, packing and sockets, not hardware.

    python benchmarks/protocol_throughput.py [--json] [--mib 8] [--requests 40]

Each request sends a FIX8 tensor of ``--mib`` MiB and receives it back; the figure is payload
MB/s in each direction (MB = 10**6 bytes), wall time over all requests.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from firmware.agent import Agent, AgentConfig, LoopbackBackend
from gen.report import emit
from host.client import AgentClient


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--mib", type=float, default=8.0)
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args()
    token = "bench"
    agent = Agent(LoopbackBackend(), AgentConfig(token))
    srv = agent.server("127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    n = int(args.mib * (1 << 20))
    x = np.random.default_rng(0).integers(-128, 127, (n,), endpoint=True).astype(np.int8)
    try:
        with AgentClient("127.0.0.1", srv.server_address[1], token) as c:
            c.infer(x[:1024], "fix8")  # warm up
            t0 = time.perf_counter()
            for _ in range(args.requests):
                y, _ = c.infer(x, "fix8")
            dt = time.perf_counter() - t0
            assert np.array_equal(y, x), "the loop must return what it was sent"
    finally:
        srv.shutdown()
        srv.server_close()
    mb = n * args.requests / 1e6
    emit({"payload_mb_each_way": round(mb, 1), "seconds": round(dt, 3),
          "mb_per_s_each_way": round(mb / dt, 1), "request_mib": args.mib,
          "requests": args.requests}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
