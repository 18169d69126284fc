"""Byzantine behaviours. Each wraps an honest replica holding the validator's real key and
decides what actually goes out (signing conflicting messages directly, bypassing the guard).

Equivocations only count when the victims can see them, so conflicting messages are split
between peers: half get one version, half the other, and honest relaying must bring them
together for evidence to be found.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

from nacl.signing import SigningKey

from consensus.messages import Message, Proposal, Vote, block_hash_of
from consensus.signing import Ed25519Signer, sign_proposal, sign_vote
from consensus.validators import BlockHash, ChainContext, ValidatorId
from proto import types_pb2

if TYPE_CHECKING:
    from consensus.sim.world import Instance, World

__all__ = ["Strategy", "strategy_for"]

_Sync = list[tuple[types_pb2.Block, types_pb2.CommitCertificate]]


class Strategy:
    """Default: behave like an honest node (Twins use this)."""

    relays = True
    invalid_blocks = False
    accepts_anything = False

    def __init__(self, world: World, inst: Instance) -> None:
        self.w = world
        self.inst = inst
        self.rng = random.Random(f"byzantine/{world.sc.seed}/{inst.iid}")

    def send(self, msg: Message, dests: list[Instance] | None = None) -> None:
        self.w.send(self.inst, msg, dests)

    def split(self) -> tuple[list[Instance], list[Instance]]:
        peers = self.w.peers(self.inst)
        self.rng.shuffle(peers)
        cut = len(peers) // 2
        return peers[:cut], peers[cut:]

    def broadcast(self, msg: Message) -> None:
        self.send(msg)

    def rebroadcast(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.send(m)

    def received(self, msg: Message) -> None:
        return None

    def tick(self) -> None:
        return None

    def sync_reply(self, blocks: _Sync) -> _Sync:
        return blocks

    def alt_proposal(self, p: Proposal) -> Proposal:
        from consensus.sim.world import sim_block

        header = types_pb2.BlockHeader.FromString(p.block.header) if p.block else None
        prev = header.prev_block_hash if header else bytes(32)
        invalid = self.rng.random() < 0.3
        alt = sim_block(p.height, p.round, self.inst.vid, prev, f"alt{self.rng.random()}", invalid)
        return sign_proposal(
            self.inst.signer, self.w.ctx, p.height, p.round, p.pol_round, block_hash_of(alt), alt
        )

    def alt_vote(self, v: Vote, known: BlockHash | None = None) -> Vote:
        target: BlockHash | None
        if v.block_hash is None:
            target = known or BlockHash(self.rng.randbytes(32))
        else:
            target = None if self.rng.random() < 0.5 else BlockHash(self.rng.randbytes(32))
        return sign_vote(self.inst.signer, self.w.ctx, v.type, v.height, v.round, target)


class Silent(Strategy):
    relays = False

    def broadcast(self, msg: Message) -> None:
        return None

    def rebroadcast(self, msgs: list[Message]) -> None:
        return None


class Withhold(Strategy):
    relays = False

    def broadcast(self, msg: Message) -> None:
        if self.rng.random() < 0.7:
            return
        peers = self.w.peers(self.inst)
        self.send(msg, self.rng.sample(peers, self.rng.randint(0, len(peers))))

    def rebroadcast(self, msgs: list[Message]) -> None:
        return None


class Equivocate(Strategy):
    """Proposes different blocks to different peers, and votes for both sides."""

    def __init__(self, world: World, inst: Instance) -> None:
        super().__init__(world, inst)
        self.alt: dict[tuple[int, int], BlockHash] = {}

    def broadcast(self, msg: Message) -> None:
        a, b = self.split()
        if isinstance(msg, Proposal):
            alt = self.alt_proposal(msg)
            self.alt[(msg.height, msg.round)] = alt.block_hash
            self.send(msg, a)
            self.send(alt, b)
        elif self.rng.random() < 0.6:
            self.send(msg, a)
            self.send(self.alt_vote(msg, self.alt.get((msg.height, msg.round))), b)
        else:
            self.send(msg)


class DoubleVote(Strategy):
    def broadcast(self, msg: Message) -> None:
        if isinstance(msg, Proposal):
            self.send(msg)
            return
        alt = self.alt_vote(msg)
        if self.rng.random() < 0.3:
            self.send(msg)
            self.send(alt)
        else:
            a, b = self.split()
            self.send(msg, a)
            self.send(alt, b)


class BadSig(Strategy):
    """Sends its real messages, plus forged, foreign, unknown and malformed ones."""

    def __init__(self, world: World, inst: Instance) -> None:
        super().__init__(world, inst)
        stranger = SigningKey(hashlib.sha256(f"stranger/{inst.iid}".encode()).digest())
        self.stranger = Ed25519Signer("mallory", stranger)
        self.foreign = ChainContext(world.ctx.validators, world.ctx.genesis_hash, "other-chain")

    def broadcast(self, msg: Message) -> None:
        self.send(msg)
        sig = bytearray(msg.signature)
        sig[self.rng.randrange(64)] ^= 1 << self.rng.randrange(8)
        junk: list[Message] = []
        if isinstance(msg, Vote):
            junk.append(
                Vote(msg.type, msg.height, msg.round, msg.block_hash, msg.validator, bytes(sig))
            )
            junk.append(
                sign_vote(self.inst.signer, self.foreign, msg.type, msg.height, msg.round, None)
            )
            junk.append(sign_vote(self.stranger, self.w.ctx, msg.type, msg.height, msg.round, None))
            junk.append(  # someone else's id on our signature
                Vote(
                    msg.type,
                    msg.height,
                    msg.round,
                    None,
                    ValidatorId(self.w.ids[(self.inst.slot + 1) % self.w.sc.n]),
                    msg.signature,
                )
            )
            junk.append(  # far past height
                sign_vote(self.inst.signer, self.w.ctx, msg.type, 1, msg.round, None)
            )
        else:
            junk.append(
                Proposal(
                    msg.height,
                    msg.round,
                    msg.pol_round,
                    msg.block_hash,
                    msg.proposer,
                    bytes(sig),
                    msg.block,
                )
            )
            bogus = types_pb2.Block(header=b"not the block")
            junk.append(
                Proposal(
                    msg.height,
                    msg.round,
                    msg.pol_round,
                    msg.block_hash,
                    msg.proposer,
                    msg.signature,
                    bogus,
                )
            )
            junk.append(  # malformed: pol_round not below round
                sign_proposal(
                    self.inst.signer,
                    self.w.ctx,
                    msg.height,
                    msg.round,
                    msg.round,
                    msg.block_hash,
                    msg.block,
                )
            )
        for j in junk:
            self.send(j)

    def sync_reply(self, blocks: _Sync) -> _Sync:
        out: _Sync = []
        for block, cert in blocks:
            forged = types_pb2.CommitCertificate()
            forged.CopyFrom(cert)
            if self.rng.random() < 0.5 and forged.signatures:
                forged.signatures.append(forged.signatures[0])  # duplicate signer
            else:
                del forged.signatures[1:]
            out.append((block, forged))
        return out


class Replay(Strategy):
    def __init__(self, world: World, inst: Instance) -> None:
        super().__init__(world, inst)
        self.memory: list[Message] = []

    def received(self, msg: Message) -> None:
        if len(self.memory) < 400:
            self.memory.append(msg)
        else:
            self.memory[self.rng.randrange(400)] = msg

    def tick(self) -> None:
        if not self.memory:
            return
        peers = self.w.peers(self.inst)
        for _ in range(8):
            m = self.rng.choice(self.memory)
            if peers:
                self.send(m, [self.rng.choice(peers)])


class InvalidBlock(Strategy):
    invalid_blocks = True
    accepts_anything = True


_BY_NAME: dict[str, type[Strategy]] = {
    "equivocate": Equivocate,
    "double_vote": DoubleVote,
    "withhold": Withhold,
    "bad_sig": BadSig,
    "replay": Replay,
    "invalid_block": InvalidBlock,
    "twins": Strategy,
    "silent": Silent,
}


def strategy_for(name: str | None, world: World, inst: Instance) -> Strategy:
    if name is None or name not in _BY_NAME:
        raise ValueError(f"unknown Byzantine behaviour {name!r}")
    return _BY_NAME[name](world, inst)
