"""Who is at the other end of a peer link: signed hellos and challenges.

A link is opened in two calls, each side proving it holds the key the genesis gives the
member it names:

1. The dialer's ``PeerStatus`` carries a fresh nonce. The reply signs it, with the
   answering process's random ``instance`` (``hello_proof_bytes``), under the answering
   member's key, and carries a *challenge*: bytes the answering process made for the
   dialer's member (``Challenges.issue``). The instance is signed so that a dialer's own
   request, relayed back to it by a peer, reads as itself (the same instance), never as a
   second process holding its key (review: one faulty peer could stop every validator
   that dialled it so).
2. The dialer's ``Exchange`` stream opens with a hello that carries the challenge back and
   signs ``link_proof_bytes`` (its member, the receiver's member, the challenge).

The receiver reads a stream only from a genesis member whose proof verifies over a
challenge this very process issued to that member in the last ``CHALLENGE_TTL_S``
seconds (``link_problem``); anyone else is answered UNAUTHENTICATED before anything it
sent is read. The dialer links only to a peer that proves the member it names
(``reply_problem``).

Invariants: the two proofs are signed under different tags, and neither tag starts a
vote, proposal, record or note, so no signature made for one is valid for another.
Challenges are stateless (the issue time on this process's monotonic clock and an HMAC
under a secret made at start), so a restart voids them all and no table grows.

Not given: links are not encrypted, and whoever reads the traffic between two nodes can
replay a challenge and its proof within the TTL. Across organisations, run the peer port
over a VPN or TLS tunnel (the README says so).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from node.ed25519 import verify
from node.keys import is_member_name
from proto import services_pb2

HELLO_TAG = b"suyuan/peer-hello/v2\0"  # a PeerStatus reply's proof of the asker's nonce
LINK_TAG = b"suyuan/peer-link/v1\0"  # an Exchange hello's proof of the receiver's challenge
HELLO_NONCE_BYTES = 16
INSTANCE_BYTES = 8
CHALLENGE_TTL_S = 60.0
_STAMP = 8  # bytes of the issue time (ns on the issuer's monotonic clock)
_MAC = 16  # bytes of the HMAC-SHA256 kept
CHALLENGE_BYTES = _STAMP + _MAC


def hello_proof_bytes(genesis_hash: bytes, member: str, instance: bytes, nonce: bytes) -> bytes:
    """What a ``PeerStatus`` reply signs to prove that the process ``instance`` holds
    ``member``'s key (``instance``: ``INSTANCE_BYTES`` random bytes a node draws at start)."""
    return HELLO_TAG + genesis_hash + member.encode("utf-8") + b"\0" + instance + nonce


def link_proof_bytes(genesis_hash: bytes, sender: str, receiver: str, challenge: bytes) -> bytes:
    """What an ``Exchange`` hello signs: ``sender`` opens a link to ``receiver``, answering
    the challenge ``receiver``'s process issued (so it is good there only)."""
    return (
        LINK_TAG
        + genesis_hash
        + sender.encode("utf-8")
        + b"\0"
        + receiver.encode("utf-8")
        + b"\0"
        + challenge
    )


@dataclass
class Challenges:
    """Issues and checks this process's challenges (see the module's docstring)."""

    ttl_s: float = CHALLENGE_TTL_S
    clock: Callable[[], int] = time.monotonic_ns
    secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)

    def _mac(self, stamp: bytes, member: str) -> bytes:
        return hmac.new(self.secret, stamp + member.encode("utf-8"), hashlib.sha256).digest()[:_MAC]

    def issue(self, member: str) -> bytes:
        stamp = self.clock().to_bytes(_STAMP, "big")
        return stamp + self._mac(stamp, member)

    def problem(self, member: str, challenge: bytes) -> str:
        """Why ``challenge`` is not one this process issued to ``member`` lately ("": it is)."""
        if len(challenge) != CHALLENGE_BYTES:
            return f"no challenge of this node's ({len(challenge)} bytes where {CHALLENGE_BYTES})"
        stamp = challenge[:_STAMP]
        if not hmac.compare_digest(challenge[_STAMP:], self._mac(stamp, member)):
            return f"a challenge this node did not issue to {member!r} (or before a restart)"
        age = (self.clock() - int.from_bytes(stamp, "big")) / 1e9
        if not 0 <= age <= self.ttl_s:
            return f"a challenge issued {age:.0f} s ago (good for {self.ttl_s:.0f} s)"
        return ""


@dataclass(frozen=True)
class LinkKeys:
    """What a link needs: this node's member and signing function, and the genesis's keys."""

    genesis_hash: bytes
    member: str
    public_key: bytes
    sign: Callable[[bytes], bytes]
    key_of: Callable[[str], bytes | None]  # a genesis member's public key, None: no member


def link_hello(
    base: services_pb2.Hello, keys: LinkKeys, receiver: str, challenge: bytes
) -> services_pb2.Hello:
    """The hello that opens an ``Exchange`` stream to ``receiver``: ``base`` with the
    challenge and this member's proof of it."""
    hello = services_pb2.Hello()
    hello.CopyFrom(base)
    hello.ClearField("nonce")
    hello.challenge = challenge
    hello.proof = keys.sign(link_proof_bytes(keys.genesis_hash, keys.member, receiver, challenge))
    return hello


def link_problem(
    hello: services_pb2.Hello,
    *,
    genesis_hash: bytes,
    receiver: str,
    key_of: Callable[[str], bytes | None],
    challenges: Challenges,
) -> tuple[str, str]:
    """Why the ``Exchange`` stream that opens with ``hello`` is not read: (a kind, one of
    a few words, for the caller to count or throttle by, and a message of bounded size),
    or ("", "") if it is read."""
    who = hello.member
    if not who:
        return "no-member", "the stream's hello names no member"
    if not is_member_name(who):  # (the sender's to choose, up to the message size: 20 MB
        # names, each quoted in a refusal and kept, held 400 MB; review)
        return "no-member", f"the stream's hello names no member id ({len(who)} characters)"
    public_key = key_of(who)
    if public_key is None:
        return "outsider", f"the stream's hello names {who!r}, no member of this consortium"
    if not hello.challenge:
        return "no-proof", (
            f"{who!r} sent no link proof (a node of an earlier version? every node of a "
            "consortium runs one version)"
        )
    why = challenges.problem(who, bytes(hello.challenge))
    if why:
        return "challenge", f"{who!r} answered {why}"
    proof = link_proof_bytes(genesis_hash, who, receiver, bytes(hello.challenge))
    if not verify(public_key, proof, bytes(hello.proof)):
        return "signature", f"the stream's proof does not verify under {who!r}'s key"
    return "", ""


def reply_proves(reply: services_pb2.Hello, nonce: bytes, public_key: bytes) -> bool:
    """Whether a ``PeerStatus`` reply signs ``nonce`` and its own ``instance`` under
    ``public_key`` for its member."""
    if len(nonce) != HELLO_NONCE_BYTES or len(reply.instance) != INSTANCE_BYTES:
        return False
    proof = hello_proof_bytes(bytes(reply.genesis_hash), reply.member, bytes(reply.instance), nonce)
    return verify(public_key, proof, bytes(reply.proof))


__all__ = [
    "CHALLENGE_BYTES",
    "CHALLENGE_TTL_S",
    "HELLO_NONCE_BYTES",
    "INSTANCE_BYTES",
    "Challenges",
    "LinkKeys",
    "hello_proof_bytes",
    "link_hello",
    "link_problem",
    "link_proof_bytes",
    "reply_proves",
]
