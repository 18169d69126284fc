"""`suyuan evidence verify` and `suyuan verify` on bad input: one error line, path named once."""

import json

import pytest

from tests.cli.helpers import suyuan
from tests.fixtures import genesis


@pytest.fixture
def cwd(tmp_path):
    (tmp_path / "genesis.json").write_text(genesis().to_json())
    envelope = {"payloadType": "t", "payload": "aGk=", "signatures": []}
    (tmp_path / "env.json").write_text(json.dumps(envelope))
    (tmp_path / "adir").mkdir()
    (tmp_path / "list.json").write_text("[]")
    return tmp_path


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # protobuf's ParseError message spans two lines; it is folded into one
        ("env.json", "error: env.json: evidence: not an Evidence JSON document (Message type"),
        ("adir", "error: adir: cannot read evidence (Is a directory)"),
        ("nope.json", "error: nope.json: no such evidence file"),
        # was "evidence 0: no kind set": a JSON list was read as one empty Evidence
        ("list.json", "error: list.json: evidence: expected a JSON object (one Evidence, or"),
    ],
)
def test_evidence_verify_bad_input_is_one_line_naming_the_path_once(cwd, target, expected):
    r = suyuan("evidence", "verify", target, "--genesis", "genesis.json", cwd=cwd)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(expected)
    assert r.stderr.count(f"{target}:") == 1


def test_verify_json_answers_on_stdout_for_a_bundle_that_does_not_parse(cwd):
    # other failures printed {"valid": false, ...}; this one printed nothing on stdout
    (cwd / "bad.json").write_text("[1")
    r = suyuan("verify", "bad.json", "--genesis", "genesis.json", "--json", cwd=cwd)
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["valid"] is False
    assert doc["message"].startswith("bad.json: bundle: not valid JSON")
    assert len(r.stderr.strip().splitlines()) == 1
