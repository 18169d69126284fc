"""Every field of a real bundle is covered: mutate each one and verification must fail.

The walk visits every field of the bundle (and every field of the header it carries,
re-serialized): each bit of every bytes field, one character of every string, every
integer by one, dropping and duplicating every list element, clearing every sub-message.
A mutation may pass only when the result is still genuinely valid: dropping one commit
signature while 2f+1 remain, or dropping the optional consistency proof when no checkpoint
is given. The pass with a checkpoint samples bits with a seed, printed (set
SUYUAN_MUTATION_SEED to replay one).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import Message

from node.verify import bundle_to_json, parse_bundle_json, verify_bundle
from proto import types_pb2

Path_ = tuple[tuple[str, int | None], ...]
Mutator = Callable[[types_pb2.ProofBundle], None]


def _parent(root: Message, path: Path_) -> tuple[Message, str, int | None]:
    msg = root
    for name, idx in path[:-1]:
        msg = getattr(msg, name) if idx is None else getattr(msg, name)[idx]
    name, idx = path[-1]
    return msg, name, idx


def _get(root: Message, path: Path_):
    msg, name, idx = _parent(root, path)
    return getattr(msg, name) if idx is None else getattr(msg, name)[idx]


def _set(root: Message, path: Path_, value) -> None:
    msg, name, idx = _parent(root, path)
    if idx is None:
        setattr(msg, name, value)
    else:
        getattr(msg, name)[idx] = value


def _setter(path: Path_, value: object) -> Mutator:
    return lambda b: _set(b, path, value)


def _scalar_mutations(
    fd: Any, value, path: Path_, bits: Callable[[int], list[int]]
) -> Iterator[tuple[str, Mutator]]:
    label = ".".join(n if i is None else f"{n}[{i}]" for n, i in path)
    if fd.type == FD.TYPE_BYTES:
        for k in bits(len(value) * 8):
            flipped = bytearray(value)
            flipped[k // 8] ^= 1 << (k % 8)
            yield f"{label} bit {k}", _setter(path, bytes(flipped))
        yield f"{label} +byte", lambda b: _set(b, path, value + b"\x00")
        if value:
            yield f"{label} -byte", lambda b: _set(b, path, value[:-1])
    elif fd.type == FD.TYPE_STRING:
        for i in range(len(value)):
            c = value[i]
            other = "a" if c != "a" else "b"
            yield f"{label} char {i}", _setter(path, value[:i] + other + value[i + 1 :])
        yield f"{label} +char", lambda b: _set(b, path, value + "x")
        yield f"{label} empty", lambda b: _set(b, path, "")
    elif fd.type in (FD.TYPE_UINT64, FD.TYPE_UINT32, FD.TYPE_INT64, FD.TYPE_INT32):
        yield f"{label} +1", lambda b: _set(b, path, value + 1)
        if value > 0 or fd.type in (FD.TYPE_INT64, FD.TYPE_INT32):
            yield f"{label} -1", lambda b: _set(b, path, value - 1)
    else:  # pragma: no cover - the schema has no other scalar types in a bundle
        raise AssertionError(f"unhandled field type {fd.type} at {label}")


def _drop(path: Path_) -> Mutator:
    def run(b: types_pb2.ProofBundle) -> None:
        msg, name, idx = _parent(b, path)
        del getattr(msg, name)[idx]

    return run


def _dup(path: Path_) -> Mutator:
    def run(b: types_pb2.ProofBundle) -> None:
        msg, name, idx = _parent(b, path)
        assert idx is not None
        items = getattr(msg, name)
        vals = list(items)
        if vals and isinstance(vals[0], Message):
            copies = [type(v)() for v in vals]
            for c, v in zip(copies, vals, strict=True):
                c.CopyFrom(v)
            copies.insert(idx, copies[idx])
            del items[:]
            for c in copies:
                items.add().CopyFrom(c)
        else:
            vals.insert(idx, vals[idx])
            del items[:]
            items.extend(vals)

    return run


def _clear(path: Path_) -> Mutator:
    def run(b: types_pb2.ProofBundle) -> None:
        msg, name, _ = _parent(b, path)
        msg.ClearField(name)

    return run


def walk(
    msg: Message, prefix: Path_, bits: Callable[[int], list[int]]
) -> Iterator[tuple[str, str, Path_, Mutator]]:
    """(kind, label, path, mutator) for every field of ``msg``, recursively."""
    for fd in msg.DESCRIPTOR.fields:
        name = fd.name
        if fd.is_repeated:
            items = getattr(msg, name)
            for i in range(len(items)):
                p = (*prefix, (name, i))
                yield "drop", f"{name}[{i}] drop", p, _drop(p)
                yield "dup", f"{name}[{i}] dup", p, _dup(p)
                if fd.type == FD.TYPE_MESSAGE:
                    yield from walk(items[i], p, bits)
                else:
                    for label, m in _scalar_mutations(fd, items[i], p, bits):
                        yield "scalar", label, p, m
        elif fd.type == FD.TYPE_MESSAGE:
            if msg.HasField(name):
                p = (*prefix, (name, None))
                yield "clear", f"{name} clear", p, _clear(p)
                yield from walk(getattr(msg, name), p, bits)
        else:
            p = (*prefix, (name, None))
            value = getattr(msg, name)
            assert value or fd.type != FD.TYPE_BYTES, f"bytes field {name} is unset"
            for label, m in _scalar_mutations(fd, value, p, bits):
                yield "scalar", label, p, m


def header_mutations(
    bundle: types_pb2.ProofBundle, bits: Callable[[int], list[int]]
) -> Iterator[tuple[str, Mutator]]:
    """Mutations of each field of the carried header, re-serialized into ``header``."""
    header = types_pb2.BlockHeader.FromString(bundle.header)
    for fd in header.DESCRIPTOR.fields:
        p = ((fd.name, None),)
        for label, m in _scalar_mutations(fd, getattr(header, fd.name), p, bits):

            def run(b: types_pb2.ProofBundle, m=m) -> None:
                h = types_pb2.BlockHeader.FromString(b.header)
                m(h)
                b.header = h.SerializeToString()

            yield f"header.{label}", run


def may_pass(kind: str, path: Path_, bundle: types_pb2.ProofBundle, with_cp: bool) -> bool:
    """Mutations that leave a genuinely valid bundle."""
    if kind == "drop" and path[0][0] == "certificate" and path[-1][0] == "signatures":
        return len(bundle.certificate.signatures) - 1 >= 3
    return kind == "clear" and path == (("consistency", None),) and not with_cp


def _seed() -> int:
    env = os.environ.get("SUYUAN_MUTATION_SEED")
    return int(env) if env else random.SystemRandom().randrange(1 << 32)


@pytest.fixture
def sample(chain):
    """A handoff (two signatures) with a consistency proof: every bundle field is set."""
    bundle = chain.bundle(chain.hand, since_size=3)
    assert bundle.consistency.path
    assert bundle.inclusion_path
    return bundle


def run_walk(chain, bundle, checkpoint, bits) -> int:
    assert verify_bundle(bundle, chain.genesis, checkpoint)
    with_cp = checkpoint is not None
    count = 0
    failures: list[str] = []
    muts = [(k, label, p, m) for k, label, p, m in walk(bundle, (), bits)]
    hp: Path_ = (("header", None),)
    muts += [("scalar", label, hp, m) for label, m in header_mutations(bundle, bits)]
    for kind, label, path, mutate in muts:
        b = types_pb2.ProofBundle()
        b.CopyFrom(bundle)
        mutate(b)
        assert b != bundle, label
        ok = bool(verify_bundle(b, chain.genesis, checkpoint))
        if ok != may_pass(kind, path, bundle, with_cp):
            failures.append(f"{label} ({'verified' if ok else 'refused'})")
        count += 1
    assert not failures, f"unexpected outcomes: {failures[:20]}"
    return count


def test_every_bit_every_field_without_checkpoint(chain, sample):
    n = run_walk(chain, sample, None, lambda nbits: list(range(nbits)))
    print(f"{n} mutations (exhaustive bit flips), all refused but the genuinely valid ones")
    assert n > 5000


def test_sampled_mutations_with_checkpoint(chain, sample):
    seed = _seed()
    print(f"mutation seed: {seed} (SUYUAN_MUTATION_SEED={seed} replays it)")
    rng = random.Random(seed)

    def bits(nbits: int) -> list[int]:
        return sorted(rng.sample(range(nbits), min(nbits, 12))) if nbits else []

    n = run_walk(chain, sample, chain.checkpoint(1), bits)
    print(f"{n} mutations with a checkpoint (seed {seed})")


def test_genuinely_valid_changes_pass(chain, sample):
    b = types_pb2.ProofBundle()
    b.CopyFrom(sample)
    del b.certificate.signatures[1]
    assert verify_bundle(b, chain.genesis)
    b.ClearField("consistency")
    assert verify_bundle(b, chain.genesis)
    assert not verify_bundle(b, chain.genesis, chain.checkpoint(1))


def test_json_level_changes_fail(chain, sample):
    import json

    doc = json.loads(bundle_to_json(sample))
    for key in ("log_index", "record_height"):
        d = json.loads(json.dumps(doc))
        d[key] = str(int(d[key]) + 1)
        assert not verify_bundle(parse_bundle_json(json.dumps(d)), chain.genesis)
    d = json.loads(json.dumps(doc))
    d["extra"] = 1
    with pytest.raises(Exception, match="bundle"):
        parse_bundle_json(json.dumps(d))


def test_a_broken_consistency_proof_names_the_sizes_smaller_first(chain, sample):
    # QA-X L3: with the checkpoint newer than the record's block it read "between sizes 34
    # and 16"
    b = types_pb2.ProofBundle()
    b.CopyFrom(sample)
    b.consistency.path[0] = bytes(x ^ 1 for x in b.consistency.path[0])
    res = verify_bundle(b, chain.genesis)
    lo, hi = sorted((b.consistency.old_size, types_pb2.BlockHeader.FromString(b.header).log_size))
    assert not res
    assert f"consistency proof from log size {lo} to {hi} does not verify" in str(
        [s.message for s in res.steps]
    )
