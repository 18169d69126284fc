"""A stand-in node process for testing the testnet's process handling without a real node.

Run as ``python fake_node.py node start --config CFG`` (the same argv shape as the real
node, so ``testnet.procs.is_ours`` recognises it). It serves gRPC health and Ledger.Status
on the config's listen address until SIGTERM. ``$FAKE_NODE_MODE``: "exit" fails at start,
"unhealthy" serves NOT_SERVING, "ignore-term" ignores SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from node.config import NodeConfig
from proto import services_pb2, services_pb2_grpc


class _Ledger(services_pb2_grpc.LedgerServicer):
    def __init__(self, member: str) -> None:
        self.member = member

    def Status(self, request, context):
        return services_pb2.StatusResponse(member=self.member, height=0, head_hash=b"\x00" * 32)


def main() -> None:
    cfg = NodeConfig.load(Path(sys.argv[sys.argv.index("--config") + 1]))
    mode = os.environ.get("FAKE_NODE_MODE", "")
    if mode == "exit":
        print("fake node: failing at start as asked", flush=True)
        sys.exit(3)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.so_reuseport", 0)]
    )
    services_pb2_grpc.add_LedgerServicer_to_server(_Ledger(cfg.member), server)
    hs = health.HealthServicer()
    status = (
        health_pb2.HealthCheckResponse.NOT_SERVING
        if mode == "unhealthy"
        else health_pb2.HealthCheckResponse.SERVING
    )
    hs.set("", status)
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    server.add_insecure_port(cfg.listen)
    done = threading.Event()
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    held = os.open(cfg.data_dir, os.O_RDONLY)  # as the real node holds its data folder
    server.start()
    print(f"fake node {cfg.member} serving on {cfg.listen}", flush=True)
    done.wait(600)
    server.stop(0).wait(5)
    os.close(held)


if __name__ == "__main__":
    main()
