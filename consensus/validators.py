"""The validator set and the chain context every signature is bound to.

Invariants:

1. Validators are listed in genesis order; ids are distinct and so are public keys (one key
   counted under two ids would let one signer count twice towards a quorum).
2. Public keys are raw 32-byte Ed25519 verify keys; the genesis hash is 32 bytes.
3. ``proposer(height, round)`` is round-robin, ``members[(height + round) % n]``: it rotates
   with both the height and the round, so a faulty proposer costs at most one round in n.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NewType

from consensus.quorum import max_faulty, quorum, skip_threshold

__all__ = ["BlockHash", "ChainContext", "ValidatorId", "ValidatorSet"]

ValidatorId = NewType("ValidatorId", str)
BlockHash = NewType("BlockHash", bytes)

HASH_LEN = 32
KEY_LEN = 32


@dataclass(frozen=True)
class ValidatorSet:
    """Equal-weight validators in genesis order."""

    members: tuple[tuple[ValidatorId, bytes], ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("validator set is empty")
        index: dict[str, int] = {}
        seen_keys: set[bytes] = set()
        for i, (vid, key) in enumerate(self.members):
            if not vid:
                raise ValueError("validator id is empty")
            if vid in index:
                raise ValueError(f"duplicate validator id {vid!r}")
            if len(key) != KEY_LEN:
                raise ValueError(f"validator {vid!r}: public key must be {KEY_LEN} bytes")
            if key in seen_keys:
                raise ValueError(f"validator {vid!r}: public key already used by another id")
            index[vid] = i
            seen_keys.add(key)
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, bytes]]) -> ValidatorSet:
        """Build from ``[(member_id, public_key_bytes)]`` in genesis order."""
        return cls(tuple((ValidatorId(v), bytes(k)) for v, k in pairs))

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return quorum(self.n)

    @property
    def skip(self) -> int:
        return skip_threshold(self.n)

    @property
    def ids(self) -> tuple[ValidatorId, ...]:
        return tuple(v for v, _ in self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[ValidatorId]:
        return iter(self.ids)

    def __contains__(self, validator: object) -> bool:
        return validator in self._index

    def index(self, validator: str) -> int | None:
        """Position in genesis order, or None for a non-validator."""
        return self._index.get(validator)

    def public_key(self, validator: str) -> bytes | None:
        i = self._index.get(validator)
        return None if i is None else self.members[i][1]

    def proposer(self, height: int, round_: int) -> ValidatorId:
        """The proposer of ``(height, round)``: ``members[(height + round) % n]``."""
        return self.members[(height + round_) % self.n][0]


@dataclass(frozen=True)
class ChainContext:
    """What every consensus signature is bound to: the chain and its validators."""

    validators: ValidatorSet
    genesis_hash: bytes
    chain_id: str

    def __post_init__(self) -> None:
        if len(self.genesis_hash) != HASH_LEN:
            raise ValueError(f"genesis hash must be {HASH_LEN} bytes")
        if len(self.chain_id.encode()) > 0xFFFF:
            raise ValueError("chain id too long")
