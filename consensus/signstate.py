"""The last thing a validator signed, and the guard that stops it signing twice.

Invariants (``SignGuard``):

1. Signing positions are ordered ``(height, round, step)`` with steps
   PROPOSE < PREVOTE < PRECOMMIT. A validator signs a message only at a position strictly
   after the last one it signed, or exactly at it with identical content (same block hash
   and pol_round: an idempotent re-sign after a restart, giving the same Ed25519
   signature). So it never signs two different votes for one (height, round, type), nor two
   different proposals for one (height, round), even across restarts, provided
2. the driver persists every ``PersistSignState`` action durably before it executes any
   action after it (in particular the ``Broadcast`` of the message it protects).
3. The state also carries the lock (locked round and locked block hash). Forgetting a lock
   on restart would let an honest validator prevote against a value that may already be
   decided (the "amnesia" attack), so the lock is persisted with the precommit that sets it.
4. It carries the signatures themselves (the last message, and the last prevote and the
   last precommit at this height), so a restarted validator can re-send exactly what it
   signed. Otherwise a vote lost in flight at the crash could leave the others short of a
   quorum for ever: the others still in the precommit step of a round this validator left
   need its precommit of that round (seed 20563 of ``python -m consensus.sim``: it had
   moved on to prevote in the next round, the state kept that prevote, and its precommit
   was lost with the crash; the honest validators waited in two rounds for ever).

Byte layout of ``SignState.to_bytes()`` (fixed length, 375 bytes; the 274-byte layout
without the last precommit, and the 113-byte one without the last prevote, still read)::

    magic       21  b"suyuan/sign-state/v1\\0"
    height       8  u64 BE
    round        4  u32 BE
    step         1  1 propose, 2 prevote, 3 precommit
    pol_round    4  i32 BE (proposals; -1 otherwise)
    has_hash     1  0 nil, 1 block
    block_hash  32  zeros for nil
    lock_round   4  i32 BE (-1: not locked)
    lock_hash   32  zeros when not locked
    signature   64  the signature last produced
    pv_round     4  i32 BE: round of the last prevote at this height (-1: none)
    pv_has_hash  1  0 nil, 1 block
    pv_hash     32  the last prevote's block hash (zeros for nil)
    pv_sig      64  the last prevote's signature
    pc_round     4  i32 BE: round of the last precommit at this height (-1: none)
    pc_has_hash  1  0 nil, 1 block
    pc_hash     32  the last precommit's block hash (zeros for nil)
    pc_sig      64  the last precommit's signature
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from consensus.messages import Step
from consensus.validators import HASH_LEN, BlockHash
from node.errors import InputError

__all__ = ["SignGuard", "SignState"]

_MAGIC = b"suyuan/sign-state/v1\0"
_BODY = struct.Struct(">QIBiB32si32s64siB32s64siB32s64s")
_BODY_V1_PREVOTE = struct.Struct(">QIBiB32si32s64siB32s64s")  # 274-byte records, readable
_BODY_V1_EARLY = struct.Struct(">QIBiB32si32s64s")  # 113-byte records, still readable
_ZERO = bytes(HASH_LEN)


@dataclass(frozen=True)
class SignState:
    """What was signed last, and the lock held when it was signed."""

    height: int
    round: int
    step: Step
    block_hash: BlockHash | None
    pol_round: int = -1
    signature: bytes = b""
    locked_round: int = -1
    locked_hash: BlockHash | None = None
    prevote_round: int = -1
    prevote_hash: BlockHash | None = None
    prevote_signature: bytes = b""
    precommit_round: int = -1
    precommit_hash: BlockHash | None = None
    precommit_signature: bytes = b""

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.height, self.round, int(self.step))

    def to_bytes(self) -> bytes:
        """Serialize for ``Store.put_sign_state`` (layout in the module docstring)."""
        return _MAGIC + _BODY.pack(
            self.height,
            self.round,
            int(self.step),
            self.pol_round,
            0 if self.block_hash is None else 1,
            self.block_hash or _ZERO,
            self.locked_round,
            self.locked_hash or _ZERO,
            self.signature.ljust(64, b"\0"),
            self.prevote_round,
            0 if self.prevote_hash is None else 1,
            self.prevote_hash or _ZERO,
            self.prevote_signature.ljust(64, b"\0"),
            self.precommit_round,
            0 if self.precommit_hash is None else 1,
            self.precommit_hash or _ZERO,
            self.precommit_signature.ljust(64, b"\0"),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignState:
        """Parse ``to_bytes`` output. Raises ``InputError`` on anything else."""
        if not data.startswith(_MAGIC):
            raise InputError("sign state: bad magic")
        none = (-1, 0, _ZERO, bytes(64))  # (a vote of a layout that did not keep it)
        body = data[len(_MAGIC) :]
        if len(body) == _BODY_V1_EARLY.size:
            # The first layout (before the last prevote was kept): no prevote fields.
            fields = (*_BODY_V1_EARLY.unpack(body), *none, *none)
        elif len(body) == _BODY_V1_PREVOTE.size:  # (before the last precommit was kept)
            fields = (*_BODY_V1_PREVOTE.unpack(body), *none)
        elif len(body) == _BODY.size:
            fields = _BODY.unpack(body)
        else:
            raise InputError("sign state: bad length")
        h, r, step, pol, has_hash, bh, lr, lh, sig, pvr, pv_has, pvh, pvs = fields[:13]
        pcr, pc_has, pch, pcs = fields[13:]
        if step not in (1, 2, 3) or has_hash not in (0, 1) or lr < -1 or pol < -1:
            raise InputError("sign state: bad field value")
        if pv_has not in (0, 1) or pvr < -1 or pc_has not in (0, 1) or pcr < -1:
            raise InputError("sign state: bad field value")
        return cls(
            height=h,
            round=r,
            step=Step(step),
            block_hash=BlockHash(bh) if has_hash else None,
            pol_round=pol,
            signature=sig if sig != bytes(64) else b"",
            locked_round=lr,
            locked_hash=BlockHash(lh) if lr >= 0 else None,
            prevote_round=pvr,
            prevote_hash=BlockHash(pvh) if pv_has else None,
            prevote_signature=pvs if pvs != bytes(64) else b"",
            precommit_round=pcr,
            precommit_hash=BlockHash(pch) if pc_has else None,
            precommit_signature=pcs if pcs != bytes(64) else b"",
        )


class SignGuard:
    """Decides whether signing at a position is allowed (invariant 1)."""

    def __init__(self, last: SignState | None) -> None:
        self._last = last

    @property
    def last(self) -> SignState | None:
        return self._last

    def check(
        self, height: int, round_: int, step: Step, block_hash: bytes | None, pol_round: int = -1
    ) -> bytes | bool:
        """Return True if a fresh signature is allowed, the previous signature (bytes) if this
        is an identical re-sign of the last message, or False if signing would equivocate."""
        last = self._last
        if last is None:
            return True
        pos = (height, round_, int(step))
        if pos > last.position:
            return True
        if pos == last.position and last.block_hash == block_hash and last.pol_round == pol_round:
            return last.signature or True
        return False

    def record(self, state: SignState) -> None:
        if self._last is not None and state.position < self._last.position:
            raise RuntimeError("sign state must not move backwards")
        self._last = state
