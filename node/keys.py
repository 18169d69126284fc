"""Ed25519 member keys and their files.

A key file is JSON ``{"format": "suyuan-key/1", "name", "public_key", ...}`` holding either
an Argon2id + XSalsa20-Poly1305 (``nacl.secret.SecretBox``) encrypted seed, or, for
throwaway test networks only, the plain seed (``"encryption": "none"``).

Invariants:
  * files are created with mode 0600 and never overwritten in place (write, fsync, rename);
  * a key file readable by group or others is refused (``KeyFileError``);
  * the passphrase comes from ``$SUYUAN_PASSPHRASE`` or an interactive prompt, never argv.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils

from node.errors import InputError, KeyFileError, OutputError
from node.inputfile import read_input

FORMAT = "suyuan-key/1"
KEY_FILE_MAX_BYTES = 64 * 1024  # a key file is about 500 bytes
PASSPHRASE_ENV = "SUYUAN_PASSPHRASE"  # noqa: S105 (the variable name, not a secret)
_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


@dataclass(frozen=True)
class KeyPair:
    """A member's signing key. ``name`` is the member id the key was created for."""

    name: str
    signing_key: nacl.signing.SigningKey

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 verify key."""
        return bytes(self.signing_key.verify_key)

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    def sign(self, message: bytes) -> bytes:
        """A detached 64-byte Ed25519 signature over ``message``."""
        return self.signing_key.sign(message).signature

    @classmethod
    def generate(cls, name: str) -> KeyPair:
        validate_name(name)
        return cls(name, nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> KeyPair:
        """Deterministic keys for tests and vectors; ``seed`` is 32 bytes."""
        if len(seed) != 32:
            raise InputError("key seed must be 32 bytes")
        return cls(name, nacl.signing.SigningKey(seed))


def is_member_name(name: str) -> bool:
    """Member ids are short slugs: lowercase letters, digits, '-', '_', '.'; 1-63 chars,
    starting with a letter or digit."""
    ok = 0 < len(name) <= 63 and name[0].isascii() and name[0].isalnum()
    return ok and all(c.isascii() and (c.islower() or c.isdigit() or c in "-_.") for c in name)


def validate_name(name: str) -> None:
    """``is_member_name``, or ``InputError`` naming the rule."""
    if not is_member_name(name):
        raise InputError(
            f"invalid member name {name!r}: use 1-63 lowercase letters, digits, '-', '_', '.'"
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"key file field {what!r} is missing or not a string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:
        raise KeyFileError(f"key file field {what!r} is not valid base64") from e


def encode_key_file(key: KeyPair, passphrase: str | None) -> bytes:
    """Serialize ``key``; ``passphrase=None`` writes the seed unencrypted; ``""`` is refused."""
    if passphrase is not None and not passphrase:
        raise KeyFileError("empty passphrase; use --unencrypted for throwaway keys")
    doc: dict[str, Any] = {"format": FORMAT, "name": key.name, "public_key": key.public_hex}
    seed = bytes(key.signing_key)
    if passphrase is None:
        doc["encryption"] = "none"
        doc["seed"] = seed.hex()
    else:
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        box_key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode("utf-8"),
            salt,
            opslimit=_OPSLIMIT,
            memlimit=_MEMLIMIT,
        )
        doc["encryption"] = "argon2id+xsalsa20poly1305"
        doc["kdf"] = {"salt": _b64(salt), "opslimit": _OPSLIMIT, "memlimit": _MEMLIMIT}
        doc["ciphertext"] = _b64(bytes(nacl.secret.SecretBox(box_key).encrypt(seed)))
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def decode_key_file(data: bytes, passphrase: str | None, *, source: str = "key file") -> KeyPair:
    """Parse a key file; ``passphrase`` is needed only for encrypted files."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise KeyFileError(f"{source}: not a Suyuan key file (invalid JSON)") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"{source}: not a Suyuan key file (format is not {FORMAT!r})")
    name = doc.get("name")
    if not isinstance(name, str):
        raise KeyFileError(f"{source}: field 'name' is missing")
    encryption = doc.get("encryption")
    if encryption == "none":
        try:
            seed = bytes.fromhex(str(doc.get("seed", "")))
        except ValueError as e:
            raise KeyFileError(f"{source}: field 'seed' is not hex") from e
    elif encryption == "argon2id+xsalsa20poly1305":
        if passphrase is None:
            raise KeyFileError(f"{source}: encrypted; set {PASSPHRASE_ENV} or use a terminal")
        kdf = doc.get("kdf")
        if not isinstance(kdf, dict):
            raise KeyFileError(f"{source}: field 'kdf' is missing")
        salt = _unb64(kdf.get("salt"), "kdf.salt")
        try:
            box_key = nacl.pwhash.argon2id.kdf(
                nacl.secret.SecretBox.KEY_SIZE,
                passphrase.encode("utf-8"),
                salt,
                opslimit=int(kdf.get("opslimit", _OPSLIMIT)),
                memlimit=int(kdf.get("memlimit", _MEMLIMIT)),
            )
            seed = nacl.secret.SecretBox(box_key).decrypt(
                _unb64(doc.get("ciphertext"), "ciphertext")
            )
        except nacl.exceptions.CryptoError as e:
            raise KeyFileError(f"{source}: wrong passphrase (or the file is damaged)") from e
        except (TypeError, ValueError) as e:
            raise KeyFileError(f"{source}: invalid kdf parameters") from e
    else:
        raise KeyFileError(f"{source}: unknown encryption {encryption!r}")
    if len(seed) != 32:
        raise KeyFileError(f"{source}: seed has the wrong length")
    key = KeyPair(name, nacl.signing.SigningKey(seed))
    if doc.get("public_key") != key.public_hex:
        raise KeyFileError(f"{source}: public key does not match the secret key")
    return key


def write_key_file(path: Path, key: KeyPair, passphrase: str | None) -> None:
    """Write atomically with mode 0600; refuses to overwrite an existing file.

    Raises:
        KeyFileError: ``path`` already exists.
        OutputError: the file cannot be written ("cannot write PATH: reason"); nothing is
            left behind.
    """
    if path.exists():
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key")
    data = encode_key_file(key, passphrase)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:  # (a missing folder is not created: a mistyped path is an error)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if path appeared meanwhile: never clobbers a key
        except FileExistsError as e:
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from e
    except OSError as e:
        raise OutputError.writing(path, e) from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def read_passphrase(*, confirm: bool = False, prompt: str = "Passphrase: ") -> str:
    """The passphrase from ``$SUYUAN_PASSPHRASE`` or, on a terminal, a prompt.

    An empty passphrase is refused from either source (``KeyFileError``).
    """
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        if not env:
            raise KeyFileError(
                f"empty passphrase in ${PASSPHRASE_ENV}; use --unencrypted for throwaway keys"
            )
        return env
    if not sys.stdin.isatty():
        raise KeyFileError(f"no passphrase: set {PASSPHRASE_ENV} or run on a terminal")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise KeyFileError("passphrases do not match")
    if not first:
        raise KeyFileError("empty passphrase; use --unencrypted for throwaway keys")
    return first


def load_key_file(path: Path, passphrase: str | None = None) -> KeyPair:
    """Read a key file, refusing one that group or others can read.

    ``passphrase`` defaults to ``read_passphrase()`` when the file is encrypted.
    """
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise KeyFileError(f"{path}: no such key file") from e
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read key file ({e.strerror})") from e
    data = read_input(path, "key", limit=KEY_FILE_MAX_BYTES, error=KeyFileError)
    try:  # (what the file is comes first: QA, genesis.json given as --key was told to
        # chmod 600 the genesis)
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise KeyFileError(f"{path}: not a Suyuan key file (invalid JSON)") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"{path}: not a Suyuan key file (format is not {FORMAT!r})")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: permissions {stat.S_IMODE(st.st_mode):04o} are too open; "
            f"run: chmod 600 {path}"
        )
    if passphrase is None and doc.get("encryption") not in (None, "none"):
        passphrase = read_passphrase()
    return decode_key_file(data, passphrase, source=str(path))


def read_public_info(path: Path) -> tuple[str, str]:
    """(name, public key hex) of a key file without decrypting it.

    The public key must be 64 hex digits; an unencrypted file's seed must give it (an
    encrypted file's is checked when the key is loaded with its passphrase).
    """
    data = read_input(path, "key", limit=KEY_FILE_MAX_BYTES, error=KeyFileError)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise KeyFileError(f"{path}: not a Suyuan key file") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"{path}: not a Suyuan key file (format is not {FORMAT!r})")
    name, pub = doc.get("name"), doc.get("public_key")
    if not isinstance(name, str) or not isinstance(pub, str) or len(pub) != 64:
        raise KeyFileError(f"{path}: fields 'name' and 'public_key' are required")
    try:
        bytes.fromhex(pub)
    except ValueError as e:
        raise KeyFileError(f"{path}: field 'public_key' is not hex") from e
    if doc.get("encryption") == "none":
        decode_key_file(data, None, source=str(path))
    return name, pub
