import json
import os
from pathlib import Path

import pytest

from node.errors import InputError, KeyFileError, OutputError
from node.keys import (
    KeyPair,
    decode_key_file,
    encode_key_file,
    load_key_file,
    read_passphrase,
    write_key_file,
)


def test_encrypted_round_trip(tmp_path):
    k = KeyPair.generate("farm")
    p = tmp_path / "farm.key"
    write_key_file(p, k, "correct horse")
    assert os.stat(p).st_mode & 0o777 == 0o600
    back = load_key_file(p, "correct horse")
    assert back.name == "farm"
    assert back.public_key == k.public_key
    assert b"seed" not in p.read_bytes()


def test_wrong_passphrase_fails_cleanly(tmp_path):
    p = tmp_path / "k.key"
    write_key_file(p, KeyPair.generate("farm"), "right")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_key_file(p, "wrong")


def test_passphrase_from_environment(tmp_path, monkeypatch):
    p = tmp_path / "k.key"
    write_key_file(p, KeyPair.generate("farm"), "from-env")
    monkeypatch.setenv("SUYUAN_PASSPHRASE", "from-env")
    assert load_key_file(p).name == "farm"


def test_loose_permissions_refused(tmp_path):
    p = tmp_path / "k.key"
    write_key_file(p, KeyPair.generate("farm"), None)
    os.chmod(p, 0o640)
    with pytest.raises(KeyFileError, match="too open"):
        load_key_file(p)


def test_a_file_that_is_no_key_file_is_named_so_before_its_permissions(tmp_path):
    # QA: genesis.json given as --key was told "permissions 0644 are too open; chmod 600"
    p = tmp_path / "genesis.json"
    p.write_text('{"chain_id": "x", "members": []}')
    p.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"genesis.json: not a Suyuan key file \(format is"):
        load_key_file(p)
    p.write_text("not json")
    with pytest.raises(KeyFileError, match=r"not a Suyuan key file \(invalid JSON\)"):
        load_key_file(p)


def test_never_overwrites(tmp_path):
    p = tmp_path / "k.key"
    write_key_file(p, KeyPair.generate("farm"), None)
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(p, KeyPair.generate("farm"), None)


def test_unencrypted_round_trip_and_tamper():
    k = KeyPair.generate("farm")
    data = encode_key_file(k, None)
    assert decode_key_file(data, None).public_key == k.public_key
    doc = json.loads(data)
    doc["public_key"] = "00" * 32
    with pytest.raises(KeyFileError, match="does not match"):
        decode_key_file(json.dumps(doc).encode(), None)


@pytest.mark.parametrize("bad", [b"", b"not json", b"{}", b'{"format": "other"}'])
def test_garbage_key_files(bad):
    with pytest.raises(KeyFileError):
        decode_key_file(bad, None)


@pytest.mark.parametrize("name", ["", "Farm", "a b", "-x", "x" * 64, "农场"])
def test_bad_names(name):
    with pytest.raises(InputError):
        KeyPair.generate(name)


def test_write_key_file_failure_is_one_output_error(tmp_path):
    (tmp_path / "afile").write_text("keep")
    for target in (Path("/proc/suyuan-x.key"), tmp_path / "afile" / "x.key"):
        with pytest.raises(OutputError, match=rf"^cannot write {target}: \S"):
            write_key_file(target, KeyPair.generate("farm"), None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no temp file


def test_empty_passphrase_refused_from_env_and_api(tmp_path, monkeypatch):
    """Regression: SUYUAN_PASSPHRASE="" was accepted (the prompt refused it)."""
    monkeypatch.setenv("SUYUAN_PASSPHRASE", "")
    with pytest.raises(KeyFileError, match=r"empty passphrase in \$SUYUAN_PASSPHRASE"):
        read_passphrase(confirm=True)
    with pytest.raises(KeyFileError, match="empty passphrase"):
        encode_key_file(KeyPair.generate("farm"), "")
    p = tmp_path / "k.key"
    write_key_file(p, KeyPair.generate("farm"), "nonempty")
    with pytest.raises(KeyFileError, match="empty passphrase"):
        load_key_file(p)  # the passphrase comes from the (empty) environment variable
