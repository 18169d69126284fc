"""Machine limits for the throughput benchmark (issue #8): a re-export of ``testnet.machine``.

The functions live in the installed package (``testnet.machine``) so that ``suyuan bench``
works without this repository's ``bench/`` folder; this module keeps the old import path
and ``python -m bench.machine`` working.
"""

from __future__ import annotations

from testnet.machine import (
    MESSAGE_BYTES,
    PACKAGES,
    ceiling,
    machine_description,
    main,
    measure_verify_per_core,
)

__all__ = [
    "MESSAGE_BYTES",
    "PACKAGES",
    "ceiling",
    "machine_description",
    "main",
    "measure_verify_per_core",
]

if __name__ == "__main__":
    main()
