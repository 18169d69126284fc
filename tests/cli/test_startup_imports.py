"""Every `suyuan` command (a node's start included) starts without loading the machinery of
the commands it does not run: the audit, proof verification and benchmark modules are
imported by their own commands."""

from __future__ import annotations

import json
import subprocess
import sys

DEFERRED = ("node.audit", "node.verify", "testnet.bench", "rich.progress")


def test_the_cli_imports_audit_proof_and_bench_modules_only_when_they_run() -> None:
    code = (
        "import json, sys; import cli.main; "
        f"print(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(res.stdout) == []
