"""Machine limits for the throughput benchmark (issue #8).

Used by ``suyuan bench`` (``testnet.bench``) and re-exported by ``bench.machine``:
these helpers measure what this machine can do at most, so that cluster figures
can be compared with a CPU ceiling measured in the same run.

- :func:`measure_verify_per_core` measures Ed25519 verifications per second
  on one core (one thread, PyNaCl ``VerifyKey.verify(msg, sig)``).
- :func:`ceiling` turns that rate into an upper bound on records per second
  for a cluster in which every validator verifies every record.
- :func:`machine_description` describes the machine and package versions.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from importlib import metadata
from typing import Any

from nacl.signing import SigningKey

#: Size of the message signed and verified, close to one Suyuan record.
MESSAGE_BYTES = 400

#: Distributions whose versions :func:`machine_description` reports.
PACKAGES = ("pynacl", "lmdb", "grpcio", "protobuf", "pysyncobj")


def _verify_rate_once(seconds: float, n_messages: int = 256) -> float:
    """Verify pre-signed ~400-byte messages for ``seconds``; return verifications/s."""
    key = SigningKey.generate()
    verify_key = key.verify_key
    pairs = []
    for i in range(n_messages):
        msg = i.to_bytes(8, "big") + os.urandom(MESSAGE_BYTES - 8)
        pairs.append((msg, key.sign(msg).signature))
    verify = verify_key.verify
    # One warm-up pass so the first repetition is not penalised.
    for msg, sig in pairs:
        verify(msg, sig)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for msg, sig in pairs:
            verify(msg, sig)
        count += len(pairs)
        now = time.perf_counter()
    return count / (now - start)


def measure_verify_per_core(seconds: float = 2.0, repeats: int = 3) -> dict[str, Any]:
    """Measure Ed25519 verifications per second on one core.

    Runs ``repeats`` repetitions of ``seconds`` each, in this thread only
    (so at most one core), with PyNaCl ``VerifyKey.verify(msg, sig)`` over
    400-byte messages with detached 64-byte signatures.

    Returns a dict with ``median``, ``min``, ``max`` (verifications/s),
    ``runs`` (every repetition), ``seconds``, ``repeats``, ``message_bytes``
    and ``method``.
    """
    if seconds <= 0 or repeats < 1:
        raise ValueError("seconds must be > 0 and repeats >= 1")
    runs = [_verify_rate_once(seconds) for _ in range(repeats)]
    return {
        "median": statistics.median(runs),
        "min": min(runs),
        "max": max(runs),
        "runs": runs,
        "seconds": seconds,
        "repeats": repeats,
        "message_bytes": MESSAGE_BYTES,
        "method": "nacl.signing.VerifyKey.verify(msg, sig), one thread",
    }


def ceiling(verify_per_core: float, cores: int, validators: int) -> float:
    """Upper bound on records/s when each of ``validators`` verifies every record.

    Every record costs ``validators`` verifications in the cluster and the
    machine offers ``cores * verify_per_core`` verifications per second, so
    the bound is ``cores * verify_per_core / validators``. It ignores
    signing, hashing, storage, transport and consensus, so real figures
    must be lower.
    """
    if cores < 1 or validators < 1:
        raise ValueError("cores and validators must be >= 1")
    return cores * verify_per_core / validators


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_description() -> dict[str, Any]:
    """Describe this machine: CPU model, core count, memory, Python, package versions.

    ``nproc`` is the number of CPUs this process may run on (as ``nproc``
    prints); ``memory_bytes`` is MemTotal from /proc/meminfo, or None.
    """
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        nproc = os.cpu_count() or 1
    mem = _memory_bytes()
    return {
        "cpu_model": _cpu_model(),
        "nproc": nproc,
        "memory_bytes": mem,
        "memory_gib": round(mem / 2**30, 1) if mem is not None else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _package_version(name) for name in PACKAGES},
    }


def main() -> None:
    """Print the machine description, the verify rate and the 4-validator ceiling (JSON)."""
    import json

    machine = machine_description()
    verify = measure_verify_per_core()
    print(
        json.dumps(
            {
                "machine": machine,
                "verify": verify,
                "ceiling_4_validators": ceiling(verify["median"], machine["nproc"], 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
