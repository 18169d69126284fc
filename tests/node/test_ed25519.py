"""node.ed25519: the GIL-keeping detached verify accepts and refuses exactly what PyNaCl does."""

from __future__ import annotations

import random
import threading

import nacl.signing
import pytest

from node import ed25519

SEED = 20261204


def _cases(rng: random.Random, n: int) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for _ in range(n):
        sk = nacl.signing.SigningKey(rng.randbytes(32))
        msg = rng.randbytes(rng.randrange(0, 700))
        out.append((bytes(sk.verify_key), msg, sk.sign(msg).signature))
    return out


def test_uses_the_detached_call_here() -> None:
    # PyNaCl's wheels bundle libsodium with its symbols exported; a fallback would be slower
    assert ed25519.METHOD == "detached"


def test_agrees_with_pynacl_on_valid_and_tampered_signatures() -> None:
    rng = random.Random(SEED)
    for pk, msg, sig in _cases(rng, 60):
        variants = [
            (pk, msg, sig, True),
            (pk, msg + b"x", sig, False),
            (pk, msg, bytes([sig[0] ^ 1]) + sig[1:], False),
            (pk, msg, sig[:63] + bytes([sig[63] ^ 0x80]), False),  # S out of range
            (bytes([pk[0] ^ 1]) + pk[1:], msg, sig, False),
        ]
        for k, m, s, want in variants:
            assert ed25519.verify(k, m, s) is want, f"seed {SEED}"
            assert ed25519._pynacl(k, m, s) is want, f"seed {SEED}"


@pytest.mark.parametrize(("pk_len", "sig_len"), [(31, 64), (33, 64), (32, 63), (32, 65), (0, 0)])
def test_wrong_lengths_are_refused_not_read(pk_len: int, sig_len: int, monkeypatch) -> None:
    def never(*args):
        raise AssertionError("libsodium was called with a short buffer")

    monkeypatch.setattr(ed25519, "_DETACHED", never)
    monkeypatch.setattr(ed25519, "_pynacl", never)
    assert ed25519.verify(b"\x01" * pk_len, b"msg", b"\x02" * sig_len) is False


def test_bytes_like_arguments_are_accepted() -> None:
    pk, msg, sig = _cases(random.Random(SEED + 2), 1)[0]
    assert ed25519.verify(bytearray(pk), memoryview(msg), bytearray(sig))


def test_lengths_are_byte_counts_for_wide_memoryviews() -> None:
    """A memoryview of 4-byte items: len() counts items, the check must cover every byte."""
    import array

    sk = nacl.signing.SigningKey(random.Random(SEED + 3).randbytes(32))
    words = array.array("I", [1, 2, 3, 4])  # 16 bytes, len() == 4
    head = bytes(memoryview(words).cast("B")[:4])
    sig_of_head = sk.sign(head).signature
    assert not ed25519.verify(bytes(sk.verify_key), memoryview(words), sig_of_head)
    sig_of_all = sk.sign(bytes(memoryview(words).cast("B"))).signature
    assert ed25519.verify(bytes(sk.verify_key), memoryview(words), sig_of_all)


def test_a_thread_can_ask_for_the_gil_releasing_call(monkeypatch) -> None:
    calls: list[str] = []
    real = ed25519._pynacl

    def counted(*a):
        calls.append("pynacl")
        return real(*a)

    monkeypatch.setattr(ed25519, "_pynacl", counted)
    pk, msg, sig = _cases(random.Random(SEED + 3), 1)[0]
    assert ed25519.verify(pk, msg, sig)
    assert calls == []  # this thread keeps the GIL

    def worker() -> None:
        ed25519.release_gil_in_this_thread()
        assert ed25519.verify(pk, msg, sig)

    t = threading.Thread(target=worker)
    t.start()
    t.join(timeout=10)
    assert calls == ["pynacl"]


def test_signatures_with_zero_bytes_are_passed_whole() -> None:
    # c_char_p must pass the buffer, not stop at the first NUL
    rng = random.Random(SEED + 1)
    seen = 0
    for pk, msg, sig in _cases(rng, 200):
        if b"\x00" in sig or b"\x00" in pk or b"\x00" in msg:
            seen += 1
            assert ed25519.verify(pk, msg, sig), f"seed {SEED + 1}"
            assert not ed25519.verify(pk, msg + b"\x00", sig), f"seed {SEED + 1}"
            if b"\x00" in msg:  # a change after the first NUL must still be seen
                cut = msg.index(b"\x00") + 1
                if cut < len(msg):
                    changed = msg[:cut] + bytes([msg[cut] ^ 1]) + msg[cut + 1 :]
                    assert not ed25519.verify(pk, changed, sig), f"seed {SEED + 1}"
    assert seen > 50  # the seed gives many keys, signatures and messages with a NUL
