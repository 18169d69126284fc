"""Sealed attributes: a record's confidential fields, readable only by the members named.

A record's ``sealed`` object maps an attribute name to one base64 string (standard
alphabet, padded) that holds, for up to ``MAX_RECIPIENTS`` members::

    0x01 || n (1 byte) || n x SealedBox(recipient, file key) (80 bytes each)
         || nonce (24) || XChaCha20-Poly1305(file key, nonce, canonical JSON of the value,
                                             associated data = binding(genesis, author, name))

The file key is 32 random bytes per attribute. ``SealedBox`` (libsodium's
``crypto_box_seal``: an ephemeral X25519 key and XSalsa20-Poly1305) hides who the
recipients are; a member opens an attribute by trying its own key on each of the ``n``
stanzas. The value is bound to its chain, author and attribute name (the AEAD's associated
data): a ciphertext copied into another member's record, or under another name, does not
open (``VerificationError``), so what a recipient opens is what that author sealed under
that name; the author's signature over the record then commits to it.

A member's encryption key is the genesis's ``x25519_key`` when it sets one, else the
X25519 form of the member's Ed25519 key (libsodium's ``crypto_sign_ed25519_pk_to_curve25519``,
as age does for ssh-ed25519 recipients), so every member can receive sealed attributes with
the key file it already has. (A genesis ``x25519_key`` is a key kept outside Suyuan's key
files: ``suyuan record get --key`` cannot open what is sealed to it.) Nodes never open
sealed values: the rules read public fields only, and a sealed value's bytes are checked
for form (``seal_problem``) in new records.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.utils

from node.errors import InputError, VerificationError
from node.genesis import Genesis, Member
from node.keys import KeyPair

VERSION = 1
MAX_RECIPIENTS = 16
_STANZA = 32 + nacl.bindings.crypto_box_SEALBYTES  # a sealed file key: 80 bytes
_NONCE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_MIN_BODY = _NONCE + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES


def binding(genesis_hex: str, author: str, name: str) -> bytes:
    """The associated data a value is sealed under: its chain, author and attribute name."""
    return "\0".join(("suyuan-sealed/1", genesis_hex, author, name)).encode("utf-8")


def recipient_key(member: Member) -> bytes:
    """The X25519 public key a value sealed for ``member`` is sealed to."""
    if member.x25519_key:
        return member.x25519_key
    return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(member.public_key)


def seal(value: Any, recipients: Sequence[bytes], aad: bytes) -> str:
    """``value`` (finite JSON) sealed for each X25519 key in ``recipients`` (1 to 16), bound
    to ``aad`` (``binding``)."""
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise InputError(f"seal: 1 to {MAX_RECIPIENTS} recipients, not {len(recipients)}")
    try:
        plain = json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
    except (TypeError, ValueError) as e:  # NaN or Infinity, as public attributes refuse
        raise InputError(f"seal: the value is not finite JSON ({e})") from e
    file_key = nacl.utils.random(32)
    stanzas = b"".join(
        nacl.public.SealedBox(nacl.public.PublicKey(pk)).encrypt(file_key) for pk in recipients
    )
    nonce = nacl.utils.random(_NONCE)
    body = nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plain.encode("utf-8"), aad, nonce, file_key
    )
    return base64.b64encode(bytes((VERSION, len(recipients))) + stanzas + body).decode("ascii")


def seal_attributes(
    genesis: Genesis, author: str, to: Sequence[str], attributes: Mapping[str, Any]
) -> dict[str, str]:
    """Each of ``attributes`` sealed for the author and the members ``to`` (the author can
    always read back what it wrote). ``InputError`` names a recipient that is not a member."""
    recipients = list(dict.fromkeys([author, *to]))  # in order, once each
    keys = []
    for mid in recipients:
        member = genesis.member(mid)
        if member is None:
            raise InputError(f"seal: {mid!r} is not a member of chain {genesis.chain_id!r}")
        keys.append(recipient_key(member))
    out = {}
    for name, value in attributes.items():
        try:
            out[name] = seal(value, keys, binding(genesis.hash_hex, author, name))
        except InputError as e:
            raise InputError(f"{e} (attribute {name!r})") from e
    return out


def _parse(text: str) -> tuple[list[bytes], bytes]:
    """(stanzas, body) of a sealed value; ``InputError`` naming what is wrong."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise InputError("not base64") from e
    if len(raw) < 2 or raw[0] != VERSION:
        raise InputError(f"not a version-{VERSION} sealed value")
    n = raw[1]
    if not 1 <= n <= MAX_RECIPIENTS:
        raise InputError(f"{n} recipients (1 to {MAX_RECIPIENTS})")
    end = 2 + n * _STANZA
    if len(raw) < end + _MIN_BODY:
        raise InputError("truncated")
    return [raw[2 + i * _STANZA : 2 + (i + 1) * _STANZA] for i in range(n)], raw[end:]


def seal_problem(text: str) -> str:
    """Why ``text`` is not a well-formed sealed value, or ``""`` (nothing is decrypted)."""
    try:
        _parse(text)
    except InputError as e:
        return str(e)
    return ""


def private_key(key: KeyPair) -> nacl.public.PrivateKey:
    """The X25519 private key of a member key file (the form ``recipient_key`` derives)."""
    return key.signing_key.to_curve25519_private_key()


def open_sealed(text: str, key: nacl.public.PrivateKey, aad: bytes) -> tuple[bool, Any]:
    """(True, value) if ``key`` is one of the value's recipients, else (False, None).

    Raises:
        VerificationError: a stanza opened for ``key`` but the value does not decrypt under
            ``aad`` (damaged, or copied from another record or name) or is not JSON.
        InputError: ``text`` is not a sealed value at all.
    """
    stanzas, body = _parse(text)
    box = nacl.public.SealedBox(key)
    for stanza in stanzas:
        try:
            file_key = box.decrypt(stanza)
        except nacl.exceptions.CryptoError:
            continue
        try:
            plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                body[_NONCE:], aad, body[:_NONCE], file_key
            )
            return True, json.loads(plain.decode("utf-8"))
        except (nacl.exceptions.CryptoError, ValueError) as e:
            raise VerificationError(
                "sealed value does not decrypt: damaged, or copied from another record or attribute"
            ) from e
    return False, None


__all__ = [
    "MAX_RECIPIENTS",
    "binding",
    "open_sealed",
    "private_key",
    "recipient_key",
    "seal",
    "seal_attributes",
    "seal_problem",
]
