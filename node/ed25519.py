"""Ed25519 signature checks that keep the GIL: libsodium's detached verify, called directly.

PyNaCl's bindings release the GIL around every libsodium call. A node checks thousands of
signatures a second in worker threads while its event loop runs, and on a machine whose
cores are already busy (several nodes, or other processes) each release hands the GIL to a
waiting thread and each re-acquisition waits for it back: measured here, a check that
costs 54 us of CPU took 5.1 ms of wall time beside one busy Python thread, and a 4-node
testnet made about a dozen futex calls per record. Holding the GIL for the 54 us removes
those hand-offs and loses no parallelism a busy machine had to give.

A thread pool that exists to check signatures in parallel (the offline audit's) calls
``release_gil_in_this_thread()`` once per worker thread: checks made in that thread then
go through PyNaCl and release the GIL.

This loads ``crypto_sign_verify_detached`` from the libsodium that PyNaCl itself ships
(the same code and constant-time implementation; PyNaCl has initialised it on import) with
``ctypes.PyDLL``, which calls without releasing the GIL. Where that library does not export
the symbol (a PyNaCl built against a system libsodium), it falls back to PyNaCl's
``crypto_sign_open``; both accept and refuse exactly the same signatures
(``tests/node/test_ed25519.py`` checks them against each other).
"""

from __future__ import annotations

import ctypes
import importlib
import threading
from collections.abc import Callable
from typing import Any

import nacl.bindings
import nacl.exceptions

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def _pynacl(public_key: bytes, message: bytes, sig: bytes) -> bool:
    try:
        nacl.bindings.crypto_sign_open(sig + message, public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def _load_detached() -> Callable[..., Any] | None:
    try:
        sodium = importlib.import_module("nacl._sodium")  # the module carrying libsodium
        fn = ctypes.PyDLL(str(sodium.__file__)).crypto_sign_verify_detached
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    return fn


_DETACHED = _load_detached()
_local = threading.local()
#: ``"detached"`` (GIL kept) or ``"pynacl"`` (the fallback); reported by ``suyuan bench``.
METHOD = "detached" if _DETACHED is not None else "pynacl"


def release_gil_in_this_thread() -> None:
    """From now on, checks made in the calling thread release the GIL (PyNaCl's call)."""
    _local.release = True


Bytes = bytes | bytearray | memoryview


def verify(public_key: Bytes, message: Bytes, sig: Bytes) -> bool:
    """True iff ``sig`` is a valid Ed25519 signature of ``message`` by ``public_key``
    (bytes-like arguments are copied to ``bytes`` first; every length is a byte count)."""
    pk, msg, sg = bytes(public_key), bytes(message), bytes(sig)
    if len(sg) != SIGNATURE_BYTES or len(pk) != PUBLIC_KEY_BYTES:
        return False
    if _DETACHED is None or getattr(_local, "release", False):
        return _pynacl(pk, msg, sg)
    return bool(_DETACHED(sg, msg, len(msg), pk) == 0)


__all__ = ["METHOD", "release_gil_in_this_thread", "verify"]
