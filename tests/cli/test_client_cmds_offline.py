"""`record submit|get`, `node status`, `testnet status` argument handling: no node needed."""

from __future__ import annotations

import json

import pytest

from tests.cli.helpers import suyuan
from tests.fixtures import object_event

NO_TESTNET = (
    "no --node given (nor $SUYUAN_NODE) and no testnet found in ./testnet or $SUYUAN_TESTNET"
)


def _env(tmp_path):
    return {"SUYUAN_TESTNET": str(tmp_path / "nowhere")}


def test_submit_needs_exactly_one_source(tmp_path):
    res = suyuan("record", "submit", cwd=tmp_path, env=_env(tmp_path))
    assert res.returncode == 2
    assert "either EVENT.json" in res.stderr
    (tmp_path / "e.json").write_text(json.dumps(object_event(["urn:x:1"])))
    res = suyuan(
        "record", "submit", "e.json", "--envelope", "e.json", cwd=tmp_path, env=_env(tmp_path)
    )
    assert res.returncode == 2
    assert "either EVENT.json" in res.stderr


def test_without_node_or_testnet_the_error_is_clear(tmp_path):
    (tmp_path / "e.json").write_text(json.dumps(object_event(["urn:x:1"])))
    for args in (
        ("record", "submit", "e.json", "--key", "k.key"),
        ("record", "get", "00" * 32),
        ("node", "status"),
    ):
        res = suyuan(*args, cwd=tmp_path, env=_env(tmp_path))
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.strip() == f"error: {NO_TESTNET}"


def test_signing_for_an_explicit_node_needs_a_genesis(tmp_path):
    (tmp_path / "e.json").write_text(json.dumps(object_event(["urn:x:1"])))
    res = suyuan(
        "record",
        "submit",
        "e.json",
        "--key",
        "k.key",
        "--node",
        "127.0.0.1:9",
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert res.returncode == 2
    assert "--genesis is required" in res.stderr


def test_envelope_takes_no_signing_options(tmp_path):
    res = suyuan(
        "record",
        "submit",
        "--envelope",
        "env.json",
        "--key",
        "k.key",
        "--node",
        "127.0.0.1:9",
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert res.returncode == 2
    assert "do not apply" in res.stderr


def test_get_refuses_a_bad_record_id(tmp_path):
    res = suyuan("record", "get", "xyz", "--node", "127.0.0.1:9", cwd=tmp_path)
    assert res.returncode == 2
    assert "64 hex characters" in res.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("checkpoint", "--out", "cp.json", "--height", "-1"), "--height"),
        (("checkpoint", "--out", "cp.json", "--height", str(2**64)), "--height"),
        (("audit", "--genesis", "g.json", "--threads", "0"), "--threads"),
        (("audit", "--genesis", "g.json", "--processes", "-1"), "--processes"),
        (("audit", "--genesis", "g.json", "--timeout", "nan"), "--timeout"),
        (("record", "get", "ab" * 32, "--timeout", "inf"), "--timeout"),
        (("node", "status", "--timeout", "-1"), "--timeout"),
        (("testnet", "down", "--timeout", "0"), "--timeout"),
        (("trace", "back", "x", "--limit", "-1"), "--limit"),
        (("trace", "forward", "x", "--max-depth", str(2**32)), "--max-depth"),
        (("testnet", "up", "--dir", "net", "--base-port", "0"), "--base-port"),
        (("bench", "--base-port", "0"), "--base-port"),
    ],
)
def test_out_of_range_options_are_usage_errors(tmp_path, args, option):
    # these reached protobuf or a thread pool and ended in a traceback
    res = suyuan(*args, cwd=tmp_path)  # refused while parsing: no node is looked for
    assert res.returncode == 2, res.stderr
    assert f"Invalid value for '{option}'" in res.stderr
    assert "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "command", "says"),
    [
        (("record", "get"), "suyuan record get", "Missing argument 'ID'"),
        (("frob",), "suyuan", "No such command 'frob'"),
        (("trace", "back", "x", "--frob"), "suyuan trace back", "No such option: --frob"),
        (("bench", "--nodes", "x"), "suyuan bench", "Invalid value for '--nodes'"),
        (("keys", "new"), "suyuan keys new", "Missing argument"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, args, command, says):
    # click's own form was five lines in a box
    res = suyuan(*args, cwd=tmp_path, env=_env(tmp_path))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {command}: "), lines[0]
    assert says in lines[0]
    assert f"(see '{command} --help')" in lines[0]
    assert res.stdout == ""


def test_help_and_bare_groups_still_print_help(tmp_path):
    res = suyuan("keys", "--help", cwd=tmp_path)
    assert res.returncode == 0
    assert "new" in res.stdout
    res = suyuan("keys", cwd=tmp_path)  # a group without its command: help, exit 2
    assert res.returncode == 2
    assert "Usage" in res.stdout + res.stderr


def test_unreachable_node_exits_5_naming_it(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = suyuan("node", "status", "--node", f"127.0.0.1:{port}", "--timeout", "1", cwd=tmp_path)
    assert res.returncode == 5
    assert f"127.0.0.1:{port}" in res.stderr


def test_testnet_status_of_a_folder_without_testnet(tmp_path):
    res = suyuan("testnet", "status", "--dir", str(tmp_path), cwd=tmp_path)
    assert res.returncode == 2
    assert "no testnet in" in res.stderr


def test_a_submit_without_answer_names_the_record(tmp_path):
    # the node may have taken the record before it went away: the id lets the user ask
    import socket

    from node.records import make_record, sign_record
    from tests.fixtures import genesis, key

    env = sign_record(make_record(genesis(), "farm", object_event(["urn:x:lost"])), key("farm"))
    (tmp_path / "env.json").write_text(env.to_json())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        # refused: no connection was made, so the record was surely not sent (QA: it said
        # "its outcome is unknown")
        res = suyuan(
            "record", "submit", "--envelope", "env.json", "--node", f"127.0.0.1:{port}",
            "--wait", "--timeout", "2", cwd=tmp_path,
        )  # fmt: skip
        assert res.returncode == 5, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert f"record {env.record_id.hex()} was not sent: no connection" in res.stderr
        # a server that takes the connection and never answers: the record may be there
        s.listen()
        res = suyuan(
            "record", "submit", "--envelope", "env.json", "--node", f"127.0.0.1:{port}",
            "--wait", "--timeout", "2", cwd=tmp_path,
        )  # fmt: skip
    assert res.returncode == 5, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"record {env.record_id.hex()}" in res.stderr


@pytest.mark.parametrize("out", [".", "/", "./"])
def test_checkpoint_out_must_name_a_file(tmp_path, out):
    # QA re-check: `checkpoint --out .` raised ValueError (a traceback)
    res = suyuan("checkpoint", "--out", out, "--node", "127.0.0.1:9", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "name a file to write the checkpoint to" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_code_that_is_not_utf8_is_a_usage_error(tmp_path):
    # QA re-check: `trace history $'...\xff'` ended in a traceback encoding the request
    import os
    import subprocess

    from tests.cli.helpers import SUYUAN

    bad = os.fsdecode(b"urn:epc:id:sgtin:6901234.000001.\xff")
    for args in (("trace", "history", bad), ("recall", bad, "--key", "k.key")):
        cmd = [SUYUAN, *args, "--node", "127.0.0.1:9"]
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, check=False, timeout=60)
        err = res.stderr.decode("utf-8", "replace")
        assert res.returncode == 2, err
        assert "is not UTF-8 text" in err
        assert "Traceback" not in err


def test_a_wait_that_times_out_says_when_the_quorum_is_lost():
    # QA: with 2 of 4 validators down, submit --wait waited 30 s and said only "not
    # committed in time", where the node knew why
    from cli.common import quorum_lost
    from node.errors import NodeUnavailableError
    from proto import services_pb2

    class Node:
        def __init__(self, up: int) -> None:
            self.up = up

        def status(self, timeout: float | None = None) -> services_pb2.StatusResponse:
            if self.up < 0:
                raise NodeUnavailableError("gone")
            return services_pb2.StatusResponse(validators=4, validators_answering=self.up,
                                               quorum=3)  # fmt: skip

    assert quorum_lost(Node(2)) == (  # type: ignore[arg-type]
        ": the node sees 2 of 4 validators answering, under the quorum of 3, so no block can commit"
    )
    assert quorum_lost(Node(3)) == ""  # type: ignore[arg-type]
    assert quorum_lost(Node(-1)) == ""  # type: ignore[arg-type]


def test_a_checkpoint_whose_note_cannot_be_written_leaves_no_checkpoint_file(tmp_path):
    # QA-V: with 4 KiB free, cp.note failed (exit 2) and cp.json stayed behind
    from cli.checkpoint_cmd import _write_both
    from node.errors import LedgerError

    out = tmp_path / "cp.json"
    missing = tmp_path / "no-such-folder" / "cp.note"  # (cannot be written)
    with pytest.raises(LedgerError):
        _write_both(out, "new", missing, "note")
    assert not out.exists()
    out.write_text("old")
    with pytest.raises(LedgerError):
        _write_both(out, "new", missing, "note")
    assert out.read_text() == "old"
    _write_both(out, "new", tmp_path / "cp.note", "note")
    assert (out.read_text(), (tmp_path / "cp.note").read_text()) == ("new", "note")
