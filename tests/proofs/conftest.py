from __future__ import annotations

import pytest

from tests.proofs.chainbuilder import ChainBuilder


@pytest.fixture
def chain(tmp_path):
    """A genuine 3-block chain: commissions, a handoff (two signatures), more commissions."""
    b = ChainBuilder(tmp_path / "store")
    envs = [b.commission(f"urn:epc:id:sgtin:0614141.107346.{i}") for i in range(5)]
    b.commit(envs[:3])
    hand = b.handoff("urn:epc:id:sgtin:0614141.107346.0")
    b.commit([hand, envs[3]])
    b.commit([envs[4]])
    b.envs = [*envs, hand]
    b.hand = hand
    try:
        yield b
    finally:
        b.close()
