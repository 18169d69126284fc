"""Deterministic blocks for store tests: block ``h`` of workload ``seed`` is always the same,
so a checker can regenerate what a (killed) writer must have stored."""

from __future__ import annotations

import hashlib
import random

from node.store import BlockWrite

GENESIS = hashlib.sha256(b"store-workload-genesis").digest()


def make_block(seed: int, height: int, max_records: int = 300) -> BlockWrite:
    rng = random.Random(seed * 1_000_003 + height)
    n = rng.randint(0, max_records)
    envelopes = [
        b"env|%d|%d|%d|" % (seed, height, i) + rng.randbytes(rng.randint(0, 600)) for i in range(n)
    ]
    header = b"header|%d|%d|%d" % (seed, height, n)
    return BlockWrite(
        height=height,
        block_hash=hashlib.sha256(header).digest(),
        header_bytes=header,
        certificate_bytes=b"cert|%d" % height,
        envelopes=envelopes,
        record_ids=[hashlib.sha256(e).digest() for e in envelopes],
        leaf_data=envelopes,
        codes=[
            [f"urn:code:{rng.randrange(50)}", f"urn:code:{rng.randrange(50)}"] for _ in range(n)
        ],
        nonces=[(f"author-{i % 5}", f"n-{seed}-{height}-{i}") for i in range(n)],
        extra=[("custody", b"last-height", b"%d" % height)],
    )
