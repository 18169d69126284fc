"""Converters between domain types (``node.envelope``) and protobuf messages (``proto``).

The one place where ``node`` dataclasses meet ``*_pb2`` types (STYLE.md §8); the server
(``node.service``) and the client (``node.client``) use the same functions.

Invariants:
  * bytes are copied, never re-encoded: ``payload`` and each ``sig`` cross unchanged, so
    ``envelope_from_proto(envelope_to_proto(e)) == e`` and the record id is preserved;
  * signature order is kept (it is part of the Merkle leaf bytes);
  * ``envelope_from_proto`` checks only the shape (a payload type is present, keyids are
    strings); signatures, membership and record content are the node's rules to check.
"""

from __future__ import annotations

from node.envelope import Envelope, Signature
from node.errors import InputError
from proto import types_pb2


def envelope_to_proto(env: Envelope) -> types_pb2.Envelope:
    """The protobuf form of ``env``, bytes exactly as signed."""
    return types_pb2.Envelope(
        payload=env.payload,
        payload_type=env.payload_type,
        signatures=[types_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in env.signatures],
    )


def envelope_from_proto(msg: types_pb2.Envelope) -> Envelope:
    """The domain envelope carried by ``msg``.

    Raises:
        InputError: the message carries no payload type (an empty or malformed envelope).
    """
    if not msg.payload_type:
        raise InputError("envelope: 'payload_type' is missing")
    return Envelope(
        payload=bytes(msg.payload),
        payload_type=msg.payload_type,
        signatures=tuple(Signature(keyid=s.keyid, sig=bytes(s.sig)) for s in msg.signatures),
    )


__all__ = ["envelope_from_proto", "envelope_to_proto"]
