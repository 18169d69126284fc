"""Genuine chains built in-process, for proof, audit and benchmark tests.

``ChainBuilder`` drives the real ``ChainState`` (build_block, validate_block, commit) over a
real LMDB ``Store`` with records signed by the fixed test keys and commit certificates of
real precommit signatures from v0..v3, so every bundle it yields is one a node would serve.
``forge_block`` builds a block WITHOUT the rules (as a Byzantine quorum could), to test that
offline verification refuses what the validators should never have certified.

Everything is deterministic: fixed keys, nonces derived from codes, fixed block times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from consensus.certificate import make_certificate
from consensus.messages import VoteType
from consensus.signing import Ed25519Signer, sign_vote
from consensus.validators import ChainContext
from node import merkle
from node.chain import EXTRA_DBS, ChainState, records_hash
from node.convert import envelope_to_proto
from node.envelope import Envelope, envelope_leaf_bytes
from node.genesis import Genesis
from node.note import SignedNote, origin, sign_checkpoint
from node.proofs import build_bundle, sign_checkpoint_note
from node.records import cosign, make_record, sign_record
from node.store import Store
from proto import types_pb2
from tests.fixtures import genesis as test_genesis
from tests.fixtures import key, object_event

VALIDATORS = ("v0", "v1", "v2", "v3")
T0_MS = 1_780_000_000_000


def nonce_for(code: str, salt: str = "") -> str:
    return hashlib.sha256(f"{salt}|{code}".encode()).hexdigest()[:32]


class ChainBuilder:
    envs: list[Envelope]  # set by fixtures that build a chain
    hand: Envelope

    def __init__(self, path: Path, genesis: Genesis | None = None) -> None:
        self.genesis = genesis or test_genesis()
        self.store = Store.open(path, self.genesis.hash, extra_dbs=EXTRA_DBS)
        self.chain = ChainState(self.store, self.genesis)
        self.validators = self.chain.validators
        self.ctx = ChainContext(self.validators, self.genesis.hash, self.genesis.chain_id)
        self.signers = [Ed25519Signer(v, key(v).signing_key) for v in VALIDATORS]

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ records

    def commission(self, code: str, author: str = "farm", salt: str = "") -> Envelope:
        rec = make_record(
            self.genesis, author, object_event([code]), category="meat", nonce=nonce_for(code, salt)
        )
        return sign_record(rec, key(author))

    def handoff(
        self, code: str, sender: str = "farm", receiver: str = "slaughterhouse"
    ) -> Envelope:
        rec = make_record(
            self.genesis,
            sender,
            object_event([code], "shipping", "OBSERVE"),
            category="meat",
            handoff_to=receiver,
            nonce=nonce_for(code, "handoff"),
        )
        return cosign(sign_record(rec, key(sender)), key(receiver))

    # ------------------------------------------------------------------ blocks

    def certify(
        self, height: int, round_: int, block_hash: bytes, signers: Sequence[str] = VALIDATORS
    ) -> types_pb2.CommitCertificate:
        chosen = [s for s in self.signers if s.validator_id in signers]
        votes = [
            sign_vote(s, self.ctx, VoteType.PRECOMMIT, height, round_, block_hash) for s in chosen
        ]
        return make_certificate(self.validators, height, round_, block_hash, votes)

    def commit(
        self, envelopes: Sequence[Envelope], round_: int = 0, decided_round: int | None = None
    ) -> int:
        """Build (for ``round_``), validate and commit one block of ``envelopes``, certified
        in ``decided_round`` (default ``round_``: a later round is Tendermint re-proposing
        the round's valid value); returns its height."""
        h = self.store.head().height + 1
        pbs = [envelope_to_proto(e) for e in envelopes]
        cands = [(pb, self.chain.verify(pb)) for pb in pbs]
        block, dropped = self.chain.build_block(
            h, round_, self.validators.proposer(h, round_), cands, T0_MS + h * 1000
        )
        assert not dropped, [str(d.reason) for d in dropped]
        prepared = self.chain.validate_block(block)
        decided = round_ if decided_round is None else decided_round
        self.chain.commit(prepared, self.certify(h, decided, prepared.block_hash))
        return h

    def committed_blocks(self) -> list[types_pb2.CommittedBlock]:
        out = []
        for h in range(1, self.store.head().height + 1):
            b = self.store.get_block(h)
            assert b is not None
            out.append(types_pb2.CommittedBlock.FromString(b.committed_block_bytes()))
        return out

    # ------------------------------------------------------------------ proofs

    def bundle(self, env: Envelope, since_size: int = 0) -> types_pb2.ProofBundle:
        return build_bundle(self.store, self.genesis, env.record_id, since_size=since_size)

    def checkpoint(self, height: int = 0, note: bool = True) -> types_pb2.Checkpoint:
        h = height or self.store.head().height
        b = self.store.get_block(h)
        assert b is not None
        cp = types_pb2.Checkpoint(
            header=b.header_bytes,
            certificate=types_pb2.CommitCertificate.FromString(b.certificate_bytes),
        )
        if note:
            sigs = [sign_checkpoint_note(self.store, self.genesis, key(v), h) for v in VALIDATORS]
            org = origin(self.genesis.chain_id, self.genesis.hash)
            lines = [sign_checkpoint(sigs[0].note, org, key(v)) for v in VALIDATORS]
            cp.note = SignedNote(sigs[0].note, tuple(lines)).to_text()
        return cp


def forge_block(
    b: ChainBuilder, envelopes: Sequence[Envelope], prev: tuple[int, bytes, list[bytes]]
) -> tuple[types_pb2.ProofBundle, list[bytes]]:
    """A bundle for ``envelopes[0]`` in a block that skips every rule, certified by all four
    validators (a Byzantine quorum). ``prev`` = (height, prev block hash, leaf hashes)."""
    height, prev_hash, leaves = prev
    new = [merkle.leaf_hash(envelope_leaf_bytes(e)) for e in envelopes]
    all_leaves = leaves + new
    header = types_pb2.BlockHeader(
        chain_id=b.genesis.chain_id,
        genesis_hash=b.genesis.hash,
        height=height,
        round=0,
        time_ms=T0_MS,
        proposer=b.validators.proposer(height, 0),
        prev_block_hash=prev_hash,
        log_size=len(all_leaves),
        log_root=merkle.root(all_leaves),
        num_records=len(envelopes),
        records_hash=records_hash(e.record_id for e in envelopes),
    )
    raw = header.SerializeToString()
    bh = hashlib.sha256(raw).digest()
    index = len(leaves)
    bundle = types_pb2.ProofBundle(
        format="suyuan-proof/1",
        genesis_hash=b.genesis.hash,
        envelope=envelope_to_proto(envelopes[0]),
        log_index=index,
        inclusion_path=merkle.inclusion_path(all_leaves, index),
        header=raw,
        certificate=b.certify(height, 0, bh),
        record_height=height,
    )
    return bundle, all_leaves
