"""C2SP tlog-checkpoint notes: text form, round trip, and signatures that verify with an
independent Ed25519 check (plain PyNaCl, key IDs recomputed here from the spec)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from nacl.signing import VerifyKey

from node.errors import InputError
from node.note import (
    EM_DASH,
    SignedNote,
    checkpoint_text,
    origin,
    parse_checkpoint_text,
    verify_checkpoint_note,
)
from node.verify import verify_checkpoint
from tests.proofs.chainbuilder import VALIDATORS


def test_checkpoint_text_layout(chain):
    cp = chain.checkpoint()
    note = cp.note
    text, _, sigs = note.partition("\n\n")
    lines = text.split("\n")
    header = chain.store.head()
    assert lines == [
        f"suyuan/{chain.genesis.chain_id}/{chain.genesis.hash.hex()}",
        str(header.log_size),
        base64.b64encode(header.log_root).decode(),
    ]
    assert note.endswith("\n")
    assert len(sigs.strip("\n").split("\n")) == 4


def test_round_trip(chain):
    note = chain.checkpoint().note
    parsed = SignedNote.from_text(note)
    assert parsed.to_text() == note
    body = parse_checkpoint_text(parsed.text)
    assert checkpoint_text(body.origin, body.size, body.root) == parsed.text


def test_signatures_verify_with_plain_pynacl(chain):
    """Recompute each key ID from the spec and check each signature with nacl directly."""
    note = chain.checkpoint().note
    cut = note.index("\n\n")
    text = note[: cut + 1].encode()
    org = origin(chain.genesis.chain_id, chain.genesis.hash)
    keys = dict(chain.genesis.validator_keys())
    seen = set()
    for line in note[cut + 2 :].rstrip("\n").split("\n"):
        dash, name, blob_b64 = line.split(" ")
        assert dash == EM_DASH
        assert name.startswith(org + "/")
        vid = name[len(org) + 1 :]
        pub = keys[vid]
        blob = base64.b64decode(blob_b64)
        want_id = hashlib.sha256(name.encode() + b"\x0a\x01" + pub).digest()[:4]
        assert blob[:4] == want_id
        VerifyKey(pub).verify(text, blob[4:])  # raises if invalid
        seen.add(vid)
    assert seen == set(VALIDATORS)


def test_checkpoint_with_note_verifies_and_mutations_fail(chain):
    cp = chain.checkpoint()
    assert verify_checkpoint(cp, chain.genesis)
    lines = cp.note.split("\n")
    # drop two signature lines: 2 of 4 left, below the quorum of 3
    short = "\n".join(lines[:-3]) + "\n"
    cp.note = short
    assert not verify_checkpoint(cp, chain.genesis)
    # one signature line duplicated
    cp.note = "\n".join([*lines[:-1], lines[-2], ""])
    assert "duplicate" in verify_checkpoint(cp, chain.genesis).reason
    # another size
    body, _, sigs = chain.checkpoint().note.partition("\n\n")
    o, size, root = body.split("\n")
    cp.note = f"{o}\n{int(size) + 1}\n{root}\n\n{sigs}"
    assert not verify_checkpoint(cp, chain.genesis)


def test_unknown_keys_are_ignored_but_bad_known_keys_reject(chain):
    cp = chain.checkpoint()
    note = cp.note
    stranger = f"{EM_DASH} example.com/witness {base64.b64encode(bytes(68)).decode()}\n"
    _, q = verify_checkpoint_note(note + stranger, chain.genesis)
    assert q
    assert q.verified == 4
    lines = note.rstrip("\n").split("\n")
    dash, name, blob = lines[-1].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1
    lines[-1] = f"{dash} {name} {base64.b64encode(bytes(raw)).decode()}"
    _, q = verify_checkpoint_note("\n".join(lines) + "\n", chain.genesis)
    assert not q
    assert "invalid note signature" in q.reason


@pytest.mark.parametrize(
    "bad",
    [
        "no blank line\n",
        "a\n1\nAAAA\n\n— k c2ln\n",  # root too short
        "a\n01\n" + base64.b64encode(bytes(32)).decode() + "\n\n— k " + "A" * 92 + "\n",
        "a\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n- k " + "A" * 92 + "\n",
        "a\x01\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n— k " + "A" * 92 + "\n",
    ],
)
def test_malformed_notes_are_refused(bad):
    def parse() -> None:
        parse_checkpoint_text(SignedNote.from_text(bad).text)

    with pytest.raises(InputError):
        parse()


def test_origin_refuses_spaces():
    with pytest.raises(InputError):
        origin("has space", bytes(32))


def test_note_text_cannot_be_vote_sign_bytes(chain):
    """Domain separation: vote sign-bytes hold a NUL; note text never does."""
    from consensus.messages import VoteType
    from consensus.signing import vote_sign_bytes

    sb = vote_sign_bytes(chain.genesis.hash, chain.genesis.chain_id, VoteType.PRECOMMIT, 1, 0, None)
    assert b"\x00" in sb
    assert b"\x00" not in chain.checkpoint().note.encode()
