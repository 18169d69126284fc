"""Traceability through the real `suyuan` CLI against a live 4-node testnet (issue #6).

Every command runs the installed console script in a subprocess with
``SUYUAN_TESTNET=<testnet dir>``, so it resolves node 0 and the genesis from the testnet,
exactly as a user's shell would. Two testnet start-ups in all: one for custody, trace and
recall (test_handoff_transform_trace_and_recall), one for EPCIS (test_epcis_import_export).

The graph built by the first test (codes in URN form; the node answers in canonical form):

    farm commissions F1 F2 F3;   farm -> slaughterhouse hands off F1 F2 (offer/accept)
    slaughterhouse:  F1 + F2 -> C1 C2 C3      (TransformationEvent, killing)
                     C1 -> K1 K2,  C2 -> K3   (TransformationEvent, cutting)
    slaughterhouse -> processor: K1 K2 K3
    processor:       K1 -> P1 P2,  K2 -> P3   (TransformationEvent, packaging)
                     pack S1 = [P1 P2 P3]; unpack P3 from S1    (AggregationEvent ADD/DELETE)
    processor -> distributor: S1 (and P1 P2 inside it)
    regulator recalls C1:  slaughterhouse C1 | processor K1 K2 P3 | distributor P1 P2
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from node.epcis import normalize_code
from tests.cli.helpers import suyuan
from tests.testnet.conftest import testnet4  # noqa: F401 (the fixture)
from tests.testnet.harness import RunningTestnet

# Each CLI run is a fresh interpreter (about 1 s of CPU); on a loaded machine the first
# test's ~70 runs can take minutes, so the bound is generous (nothing here measures speed).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

EPCIS = Path(__file__).resolve().parents[3] / "shared" / "epcis"

SG = "urn:epc:id:sgtin"
F1, F2, F3 = (f"{SG}:6901234.012345.{n}" for n in (1, 2, 3))
C1, C2, C3 = (f"{SG}:6902345.022222.{n}" for n in (101, 102, 103))
K1, K2, K3 = (f"{SG}:6902345.033333.{n}" for n in (1, 2, 3))
P1, P2, P3 = (f"{SG}:6903456.044444.{n}" for n in (11, 12, 13))
S1 = "urn:epc:id:sscc:6903456.0000000101"


def canon(*codes: str) -> set[str]:
    return {normalize_code(c) for c in codes}


class Cli:
    """The `suyuan` script pointed at one testnet, from a scratch working directory."""

    def __init__(self, tn: RunningTestnet, work: Path) -> None:
        self.tn = tn
        self.work = work
        self.env = {"SUYUAN_TESTNET": str(tn.dir), "COLUMNS": "200"}
        self._n = 0
        self.offer_ids: dict[Path, str] = {}

    def key(self, member: str) -> str:
        return str(self.tn.dir / "keys" / f"{member}.key")

    def run(self, *args: str, timeout: float = 90) -> Any:
        return suyuan(*args, cwd=self.work, env=self.env, timeout=timeout)

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        assert r.returncode == 0, f"suyuan {' '.join(args)}: rc {r.returncode}\n{r.stderr}"
        return str(r.stdout)

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def refused(self, rc: int, *args: str) -> str:
        """Run a command that must fail with exit ``rc`` and exactly one line on stderr."""
        r = self.run(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == rc, f"suyuan {' '.join(args)}: rc {r.returncode}\n{r.stderr}"
        assert len(lines) == 1, r.stderr
        assert r.stdout.strip() == "", r.stdout
        return str(lines[0])

    def draft(self, event: dict[str, Any], **extra: Any) -> Path:
        self._n += 1
        path = self.work / f"draft{self._n}.json"
        path.write_text(json.dumps({"event": event, "category": "meat", **extra}))
        return path

    def submit_wait(self, author: str, event: dict[str, Any]) -> dict[str, Any]:
        args = ("record", "submit", str(self.draft(event)), "--key", self.key(author), "--wait")
        info = self.json(*args)
        assert info["committed"] is True
        return dict(info)

    def handoff(
        self, sender: str, receiver: str, *codes: str, extra: tuple[str, ...] = (), day: int = 0
    ):
        """Write the sender's offer; returns its path (the record id is ``offer_ids[path]``).
        ``day``: dated that day of the graph at 20:00 (else now); the receiver's events are
        dated after it (rule event-time)."""
        if day:
            extra = (*extra, "--time", when(day, 20)["eventTime"])
        self._n += 1
        offer = self.work / f"offer{self._n}-{sender}.json"
        out = self.ok("handoff", "offer", *codes, "--key", self.key(sender), "--to", receiver,
                      "--out", str(offer), *extra)  # fmt: skip
        words = out.split()
        assert words[0] == "offer", out
        assert words[2:5] == ["from", sender, "to"], out
        self.offer_ids[offer] = words[1]
        return offer

    def accept(self, offer: Path, receiver: str) -> dict[str, Any]:
        info = self.json("handoff", "accept", str(offer), "--key", self.key(receiver), "--wait")
        assert info["committed"] is True
        return dict(info)

    def history(self, code: str) -> list[dict[str, Any]]:
        return list(self.json("trace", "history", code, "--all")["records"])

    def graph(self, direction: str, code: str, *opts: str) -> dict[str, Any]:
        return dict(self.json("trace", direction, code, *opts))

    def custodian(self, code: str) -> str:
        """The code's custodian, read through the client library (cheaper than a CLI run;
        the CLI's own answer is checked where it is the subject)."""
        with self.tn.client(0) as c:
            root = c.trace_forward(code, max_depth=1).nodes[0]
        assert root.depth == 0
        return str(root.custodian)

    def cli_custodian(self, code: str) -> str:
        nodes = self.graph("forward", code, "--max-depth", "1")["nodes"]
        assert nodes[0]["depth"] == 0
        return str(nodes[0]["custodian"])

    def log_count(self, code: str) -> int:
        with self.tn.client(0) as c:
            return len(c.trace_history(code, limit=1000).records)


def when(day: int, hour: int = 8) -> dict[str, str]:
    return {
        "eventTime": f"2026-03-{day:02d}T{hour:02d}:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
    }


LONG_AGO = {"eventTime": "2000-01-01T08:00:00+08:00"}  # before every GS1 example's events


def commission(*codes: str, day: int = 1) -> dict[str, Any]:
    ev = {"type": "ObjectEvent", **when(day), "action": "ADD", "bizStep": "commissioning",
          "disposition": "active"}  # fmt: skip
    return {**ev, "epcList": list(codes)} if codes else ev


def transform(inputs: list[str], outputs: list[str], step: str, day: int) -> dict[str, Any]:
    return {"type": "TransformationEvent", **when(day), "bizStep": step,
            "inputEPCList": inputs, "outputEPCList": outputs}  # fmt: skip


def aggregate(action: str, parent: str, children: list[str], step: str, day: int):
    return {"type": "AggregationEvent", **when(day), "action": action, "bizStep": step,
            "parentID": parent, "childEPCs": children}  # fmt: skip


def by_depth(page: dict[str, Any]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for n in page["nodes"]:
        out.setdefault(n["depth"], set()).add(n["code"])
    return out


def assert_tree(page: dict[str, Any]) -> None:
    """Every node but the root is reached from a node listed one level closer."""
    depth = {n["code"]: n["depth"] for n in page["nodes"]}
    assert len(depth) == len(page["nodes"]), "a code is listed twice"
    for n in page["nodes"][1:]:
        assert depth[n["via"]] == n["depth"] - 1, n


def test_handoff_transform_trace_and_recall(testnet4, tmp_path):  # noqa: F811
    cli = Cli(testnet4, tmp_path)

    # ---- commissioning, and a two-party handoff ------------------------------------
    first = cli.submit_wait("farm", commission(F1, F2, F3))
    assert cli.cli_custodian(F1) == "farm"
    # the same event submitted again, signed anew (a retry after a lost answer: another
    # nonce, the same derived eventID) answers with the committed record, exit 0
    again = cli.submit_wait("farm", commission(F1, F2, F3))
    assert (again["record_id"], again["log_index"]) == (first["record_id"], first["log_index"])
    assert again["already_committed"] is True
    assert again["signed_record_id"] not in ("", first["record_id"])
    assert cli.log_count(F1) == 1
    # another event under an eventID the chain has is refused, naming the record holding it
    eid = {"eventID": "urn:uuid:3f1c2a8e-5b7d-4e21-9a0c-6d8e2f4b1a77"}
    held = cli.submit_wait("farm", {**commission(f"{SG}:6901234.012345.901"), **eid})
    line = cli.refused(1, "record", "submit", str(cli.draft(
        {**commission(f"{SG}:6901234.012345.902"), **eid})), "--key", cli.key("farm"))  # fmt: skip
    assert line.startswith("error: rule event-id:"), line
    assert f"(record {held['record_id']})" in line
    offer = cli.handoff("farm", "slaughterhouse", F1, F2, day=1)
    # --json, as every command that reads a node takes it (QA); the offer is only written
    spare = tmp_path / "spare-offer.json"
    got = cli.json("handoff", "offer", F3, "--key", cli.key("farm"), "--to", "slaughterhouse",
                   "--time", when(1, 20)["eventTime"], "--out", str(spare))  # fmt: skip
    assert (got["from"], got["to"], got["codes"], got["file"]) == (
        "farm",
        "slaughterhouse",
        [F3],
        str(spare),
    )  # fmt: skip (codes as written, as accept)
    # refused at once: an offer dated before the sender held the goods (QA re-check: it was
    # refused only at accept; rule event-time, 15 min allowed)
    early = when(1, 7)["eventTime"]  # an hour before their commissioning
    args = ["--to", "slaughterhouse", "--time", early, "--out", str(tmp_path / "early.json")]
    line = cli.refused(1, "handoff", "offer", F1, "--key", cli.key("farm"), *args)
    assert line.startswith("error: rule event-time: offer: --time is before farm came to hold")
    assert not (tmp_path / "early.json").exists()

    # refused: the offer alone (the receiver has not signed), submitted as it is
    line = cli.refused(3, "record", "submit", "--envelope", str(offer), "--wait")
    assert "missing signature of the receiver 'slaughterhouse'" in line
    # refused at once: an offer of a code the sender does not hold (asked of the node;
    # QA: it was signed without a word, and accepted once the sender later held the code)
    line = cli.refused(1, "handoff", "offer", F3, "--key", cli.key("processor"),
                       "--to", "slaughterhouse", "--out", str(tmp_path / "no.json"))  # fmt: skip
    assert "held by farm, not processor: only its custodian can offer it" in line
    assert not (tmp_path / "no.json").exists()
    # refused: such an offer signed elsewhere (a custody rule at the node)
    ship = {"type": "ObjectEvent", **when(2), "action": "OBSERVE", "bizStep": "shipping",
            "epcList": [F3]}  # fmt: skip
    bad = tmp_path / "bad-offer.json"
    signed = cli.ok("record", "sign", str(cli.draft(ship, handoff_to="slaughterhouse")),
                    "--key", cli.key("processor"), "--genesis", str(testnet4.dir / "genesis.json"),
                    "--out", str(bad))  # fmt: skip
    cli.offer_ids[bad] = signed.split()[1]  # "record ID -> FILE"
    line = cli.refused(1, "handoff", "accept", str(bad), "--key", cli.key("slaughterhouse"))
    assert line.startswith("error: rule custody:"), line
    assert "held by 'farm'" in line
    # refused: the accept by someone other than the named receiver (checked before submit)
    line = cli.refused(2, "handoff", "accept", str(offer), "--key", cli.key("processor"))
    assert "names 'slaughterhouse' as receiver, not 'processor'" in line
    # nothing of it was committed
    for code in (F1, F2, F3):
        assert cli.log_count(code) == 1
        assert cli.custodian(code) == "farm"
    for rejected in (offer, bad):
        line = cli.refused(1, "record", "get", cli.offer_ids[rejected])
        assert "not found" in line or "not known" in line, line
    # accepted by the named receiver: committed, custody moves
    done = cli.accept(offer, "slaughterhouse")
    assert (done["from"], done["to"]) == ("farm", "slaughterhouse")
    # an accept retried after it committed (say its --wait timed out) answers where it is
    # (QA: exit 1, "already committed")
    again = cli.accept(offer, "slaughterhouse")
    assert (again["record_id"], again["log_index"]) == (done["record_id"], done["log_index"])
    assert again["already_committed"] is True
    assert "already_committed" not in done
    hist = cli.history(F1)
    assert [r["record_id"] for r in hist][-1] == done["record_id"]
    assert [r["biz_step"].rsplit("-", 1)[-1].rsplit(":", 1)[-1] for r in hist] == [
        "commissioning",
        "shipping",
    ]
    assert cli.cli_custodian(F1) == cli.cli_custodian(F2) == "slaughterhouse"
    assert cli.custodian(F3) == "farm"
    # an offer withdrawn by its sender (QA-N M4: an offer could not be withdrawn, and one
    # signed before a declaration moved the code remade since): its nonce is used, so it
    # never commits, countersigned or not; only the sender withdraws, and an accepted offer
    # is not withdrawn
    line = cli.refused(2, "handoff", "withdraw", str(spare), "--key", cli.key("slaughterhouse"))
    assert "the offer is farm's: only its sender withdraws it" in line
    gone = cli.json("handoff", "withdraw", str(spare), "--key", cli.key("farm"), "--wait")
    assert (gone["withdraws_offer"], gone["codes"], gone["committed"]) == (
        got["record_id"], [F3], True
    )  # fmt: skip
    line = cli.refused(1, "handoff", "accept", str(spare), "--key", cli.key("slaughterhouse"))
    assert "farm withdrew this offer (suyuan handoff withdraw)" in line
    assert cli.custodian(F3) == "farm"
    assert cli.history(F3)[-1]["biz_step"] == "void_shipping"
    kept = cli.json("record", "get", gone["record_id"])
    assert kept["attributes"] == {"withdraws_offer": got["record_id"]}
    again = cli.json("handoff", "withdraw", str(spare), "--key", cli.key("farm"))  # QA-Q
    assert (again["record_id"], again["already"]) == (gone["record_id"], True)
    assert again["log_index"] == gone["log_index"]
    line = cli.refused(1, "handoff", "withdraw", str(offer), "--key", cli.key("farm"))
    assert f"the offer was accepted already (committed at height {done['height']}" in line
    got = cli.json("record", "get", cli.offer_ids[offer])
    assert got["record_id"] == done["record_id"]
    assert got["category"] == "meat"  # the codes' own (QA: every handoff was "other")
    # who received it and who signed, without decoding the envelope (QA: a regulator saw
    # only "by farm ... shipping")
    assert (got["handoff_to"], got["signers"]) == ("slaughterhouse", ["farm", "slaughterhouse"])
    assert (hist[-1]["handoff_to"], hist[0]["handoff_to"]) == ("slaughterhouse", None)
    assert "handoff to slaughterhouse, signed by farm and slaughterhouse" in cli.ok(
        "record", "get", done["record_id"]
    )
    human = cli.ok("trace", "history", F1)
    assert "2 events" in human
    assert "shipping (OBSERVE in_transit)  -> slaughterhouse (countersigned)" in human
    assert "commissioning (ADD active)" in human  # (QA: action and disposition not shown)

    # ---- transformations, handoff, aggregation (pack and unpack) ---------------------
    cli.submit_wait("slaughterhouse", transform([F1, F2], [C1, C2, C3], "killing", 2))
    cli.submit_wait("slaughterhouse", transform([C1], [K1, K2], "commissioning", 3))
    cli.submit_wait("slaughterhouse", transform([C2], [K3], "commissioning", 3))
    cli.accept(cli.handoff("slaughterhouse", "processor", K1, K2, K3, day=3), "processor")
    cli.submit_wait("processor", transform([K1], [P1, P2], "commissioning", 4))
    cli.submit_wait("processor", transform([K2], [P3], "commissioning", 4))
    cli.submit_wait("processor", aggregate("ADD", S1, [P1, P2, P3], "packing", 5))
    cli.submit_wait("processor", aggregate("DELETE", S1, [P3], "unpacking", 5))
    # a code inside a container moves only with it: refused at the offer already (QA-R: only
    # the receiver's accept failed, rule aggregated)
    line = cli.refused(1, "handoff", "offer", P1, "--key", cli.key("processor"), "--to",
                       "distributor", "--out", str(tmp_path / "inner.json"))  # fmt: skip
    assert "rule aggregated:" in line, line
    assert f"is inside container {normalize_code(S1)}; disaggregate it first" in line, line
    cli.accept(cli.handoff("processor", "distributor", S1, day=5), "distributor")
    assert cli.custodian(P1) == cli.custodian(P2) == cli.custodian(S1) == "distributor"
    assert cli.custodian(P3) == "processor"

    # ---- trace back / forward against the expected graph -----------------------------
    back = cli.graph("back", P1)
    assert back["code"] == normalize_code(P1)
    assert back["direction"] == "back"
    assert by_depth(back) == {
        0: canon(P1),
        1: canon(K1, S1),
        2: canon(C1),
        3: canon(F1, F2),
    }
    assert_tree(back)
    rel = {n["code"]: n["relation"] for n in back["nodes"]}
    assert rel[normalize_code(K1)] == "input"
    assert rel[normalize_code(S1)] == "parent"
    assert back["nodes"][0]["container"] == normalize_code(S1)
    assert back["truncated"] is False
    assert back["next_page_token"] == ""
    farm_nodes = [n for n in back["nodes"] if n["depth"] == 3]
    assert {n["commissioned_by"] for n in farm_nodes} == {"farm"}
    assert {n["status"] for n in farm_nodes} == {"closed"}  # consumed by the slaughter

    fwd = cli.graph("forward", F1)
    expected_fwd = {
        0: canon(F1),
        1: canon(C1, C2, C3),
        2: canon(K1, K2, K3),
        3: canon(P1, P2, P3),
    }
    assert by_depth(fwd) == expected_fwd
    assert_tree(fwd)
    assert {n["relation"] for n in fwd["nodes"][1:]} == {"output"}
    cust = {n["code"]: n["custodian"] for n in fwd["nodes"]}
    assert cust[normalize_code(P1)] == "distributor"
    assert cust[normalize_code(K3)] == "processor"
    assert by_depth(cli.graph("forward", S1)) == {0: canon(S1), 1: canon(P1, P2, P3)}

    # paging: --limit N pages, --page TOKEN resumes, --all follows to the end
    all_codes = [n["code"] for n in fwd["nodes"]]
    assert len(all_codes) == 10
    paged: list[str] = []
    token, pages = "", 0
    while True:
        opts = ("--limit", "4") + (("--page", token) if token else ())
        page = cli.graph("forward", F1, *opts)
        assert len(page["nodes"]) <= 4
        paged += [n["code"] for n in page["nodes"]]
        pages += 1
        token = page["next_page_token"]
        if not token or pages > 5:
            break
    assert pages == 3
    assert paged == all_codes
    assert [n["code"] for n in cli.graph("forward", F1, "--limit", "3", "--all")["nodes"]] == (
        all_codes
    )
    human = cli.ok("trace", "forward", F1, "--limit", "4")
    assert "more: --page " in human
    # depth limit: truncated flag, and the human hint
    shallow = cli.graph("forward", F1, "--max-depth", "1")
    assert by_depth(shallow) == {0: canon(F1), 1: canon(C1, C2, C3)}
    assert shallow["truncated"] is True
    assert cli.graph("forward", F1, "--max-depth", "3")["truncated"] is False
    assert "depth limit reached" in cli.ok("trace", "back", P1, "--max-depth", "2")
    cli.refused(1, "trace", "back", f"{SG}:6909999.099999.1")  # never commissioned

    # ---- recall ---------------------------------------------------------------------
    # a recall by a member neither a regulator nor the code's producer is refused (by the
    # CLI, and by the node's rule)
    line = cli.refused(1, "recall", C1, "--key", cli.key("farm"), "--reason", "test")
    assert "rule recall:" in line  # a role refusal, exit 1 as through `record submit`
    assert "'farm' is neither" in line
    rogue = {**commission(F3), "action": "OBSERVE", "bizStep": "holding",
             "disposition": "recalled"}  # fmt: skip
    line = cli.refused(1, "record", "submit", str(cli.draft(rogue)), "--key",
                       cli.key("slaughterhouse"), "--wait")  # fmt: skip
    assert "rule recall:" in line
    assert "only a regulator, or the code's producer" in line
    assert cli.graph("forward", F3)["nodes"][0]["recalled"] is False

    out = cli.ok("recall", C1, "--key", cli.key("regulator"), "--reason", "Salmonella in C1")
    assert "6 codes affected, 6 newly recalled in 1 record(s)" in out
    # the recall record, named (QA: only --json named it; `record declare` needs it)
    assert re.match(r"  record [0-9a-f]{64} at height \d+, log index \d+ \(6 codes\)$",
                    out.splitlines()[1]), out  # fmt: skip
    groups: dict[str, set[str]] = {}
    closed: set[str] = set()
    current = ""
    for ln in out.splitlines()[2:]:
        if not ln.startswith("  "):
            break  # (the containers that hold recalled codes follow)
        if ln.startswith("    "):
            code = ln.split()[0]
            groups[current].add(code)
            if ln.endswith("(closed)"):  # (consumed: no disposition to tell how)
                closed.add(code)
        else:
            current = ln.split()[0].rstrip(":")
            groups[current] = set()
    assert groups == {
        "slaughterhouse": canon(C1),
        "processor": canon(K1, K2, P3),
        "distributor": canon(P1, P2),
    }
    # what was consumed before the recall is not in its last custodian's hands: told so
    assert closed == canon(C1, K1, K2)
    assert "processor: 3 codes, 1 still in its custody, 2 closed before the recall" in out
    assert "distributor holds 2:" in out
    # P1 and P2 are packed in S1 (QA: the recall named the items, not the case label)
    assert "containers holding recalled codes" in out
    assert f"  {normalize_code(S1)} at distributor: holds " in out
    scope = cli.graph("forward", C1, "--all")["nodes"]
    assert {n["code"] for n in scope} == canon(C1, K1, K2, P1, P2, P3)
    assert all(n["recalled"] for n in scope)
    assert {n["code"]: n["status"] for n in scope}[normalize_code(P3)] == "recalled"
    assert {n["code"]: n["status"] for n in scope}[normalize_code(C1)] == "closed"
    assert cli.log_count(P3) == 4  # made, packed, unpacked, recalled
    # a second recall finds nothing new
    again = cli.json("recall", C1, "--key", cli.key("regulator"))  # DESIGN.md: no --reason
    assert again["records"] == []
    assert len(again["already_recalled"]) == 6
    # ... and names the record that did (QA re-check: a re-run named none)
    [before] = again["recalled_before_by"]
    assert (before["by"], before["codes"]) == ("regulator", 6)
    assert before["log_index"] == cli.json("trace", "history", C1)["state"]["recalled_at"]
    assert again["containers"] == [
        {
            "code": normalize_code(S1),
            "custodian": "distributor",
            "holds": sorted(canon(P1, P2)),
            "container": "",
        }
    ]

    # after the recall: a plain handoff of a recalled code is refused, at the offer already
    # (QA: it was signed, and only the receiver's accept failed) ...
    line = cli.refused(1, "handoff", "offer", P3, "--key", cli.key("processor"),
                       "--to", "distributor", "--out", str(tmp_path / "no2.json"))  # fmt: skip
    assert "is recalled: it may only be handed off as a return" in line, line
    # ... and so is an offer of the case that holds recalled items (QA: it was signed)
    line = cli.refused(1, "handoff", "offer", S1, "--key", cli.key("distributor"),
                       "--to", "retailer", "--out", str(tmp_path / "no3.json"))  # fmt: skip
    assert "which is recalled" in line, line
    ship = {"type": "ObjectEvent", **when(9), "action": "OBSERVE", "bizStep": "shipping",
            "epcList": [P3]}  # fmt: skip
    signed_ship = tmp_path / "ship.json"
    cli.ok("record", "sign", str(cli.draft(ship, handoff_to="distributor")),
           "--key", cli.key("processor"), "--genesis", str(testnet4.dir / "genesis.json"),
           "--out", str(signed_ship))  # fmt: skip
    line = cli.refused(1, "handoff", "accept", str(signed_ship), "--key", cli.key("distributor"))
    assert line.startswith("error: rule recalled:"), line
    assert cli.custodian(P3) == "processor"
    # ... a return is accepted
    ret = cli.handoff("processor", "slaughterhouse", P3, extra=("--disposition", "returned"))
    cli.accept(ret, "slaughterhouse")
    assert cli.custodian(P3) == "slaughterhouse"
    p3 = cli.graph("forward", P3)["nodes"][0]
    assert (p3["status"], p3["recalled"]) == ("recalled", True)
    # codes outside the recall scope are untouched
    k3 = cli.graph("forward", K3)["nodes"][0]
    assert (k3["status"], k3["recalled"], k3["custodian"]) == ("active", False, "processor")

    # a lot's serialised items (their Digital Links carry /10/LOT) are recalled with the lot,
    # a lot never commissioned itself (its items were missed, and could still be sold)
    lot = "https://id.gs1.org/01/06901234123456/10/QA9"
    items = [f"https://id.gs1.org/01/06901234123456/10/QA9/21/{n}" for n in ("S1", "S2")]
    cli.submit_wait("processor", commission(*items, day=5))
    out = cli.ok("recall", lot, "--key", cli.key("regulator"), "--reason", "lot QA9")
    # (the lot too: recalled, it holds items made in it later)
    assert "3 codes affected, 3 newly recalled in 1 record(s)" in out
    back = cli.graph("back", items[0])["nodes"]
    assert [(n["relation"], n["code"]) for n in back][1:] == [("lot", lot)]
    sale = {**commission(items[0], day=6), "action": "OBSERVE", "bizStep": "retail_selling",
            "disposition": "retail_sold"}  # fmt: skip
    line = cli.refused(1, "record", "submit", str(cli.draft(sale)), "--key",
                       cli.key("processor"), "--wait")  # fmt: skip
    assert line.startswith("error: rule recalled:"), line
    # an item made in the lot after its recall is born recalled, and its history says by
    # which record, though that record is the lot's (QA: its history showed no recall)
    late = f"{lot}/21/S3"
    cli.submit_wait("processor", commission(late, day=6))
    hist = cli.json("trace", "history", late)
    st = hist["state"]
    assert (st["status"], st["recalled"], st["recalled_by"]) == ("recalled", True, "regulator")
    assert [r["log_index"] for r in hist["records"]] != [st["recalled_at"]]
    assert st["recalled_at"] in [
        r["log_index"] for r in cli.json("trace", "history", lot)["records"]
    ]
    text = cli.ok("trace", "history", late)
    assert f"record at log #{st['recalled_at']}; the recall of what it came from" in text
    state = json.loads(cli.ok("epcis", "export", late))["suyuan:state"]
    assert (state["status"], state["recalled_by"]) == ("recalled", "regulator")

    # per-batch inspection: a lot found non_conformant holds its items from sale (rule
    # held) until an inspector finds it conformant (QA: a failed batch's tins were sold)
    batch = "https://id.gs1.org/01/06901234123456/10/B7"
    tin = f"{batch}/21/T1"
    cli.submit_wait("processor", commission(tin, day=5))
    failed = {"type": "ObjectEvent", **when(6), "action": "OBSERVE", "bizStep": "inspecting",
              "disposition": "non_conformant", "quantityList": [{"epcClass": batch}]}  # fmt: skip
    at = cli.submit_wait("inspector", failed)["log_index"]
    sell_tin = {**sale, "epcList": [tin]}
    line = cli.refused(1, "record", "submit", str(cli.draft(sell_tin)), "--key",
                       cli.key("processor"), "--wait")  # fmt: skip
    assert line.startswith("error: rule held:"), line
    assert f"its lot {batch} was found non_conformant by 'inspector'" in line
    st = cli.json("trace", "history", tin)["state"]
    assert (st["held_at"], st["held_by"], st["held_via"]) == (at, "inspector", batch)
    # an offer that sells it is refused at once (QA: only at accept)
    line = cli.refused(1, "handoff", "offer", tin, "--key", cli.key("processor"), "--to",
                       "retailer", "--biz-step", "retail_selling", "--disposition",
                       "retail_sold", "--out", str(tmp_path / "sale.json"))  # fmt: skip
    assert line.startswith("error: rule held: offer:"), line
    assert not (tmp_path / "sale.json").exists()
    # ... and so is one that sells a case holding it (QA re-check: it was signed)
    case = "urn:epc:id:sscc:6903456.0000000998"
    cli.submit_wait("processor", commission(case, day=6))
    cli.submit_wait("processor", aggregate("ADD", case, [tin], "packing", 6))
    line = cli.refused(1, "handoff", "offer", case, "--key", cli.key("processor"), "--to",
                       "retailer", "--biz-step", "retail_selling", "--out",
                       str(tmp_path / "sale2.json"))  # fmt: skip
    assert line.startswith(f"error: rule held: offer: {normalize_code(case)} holds "), line
    cli.submit_wait("processor", aggregate("DELETE", case, [tin], "unpacking", 6))
    text = cli.ok("trace", "history", tin)
    assert f"held: its lot {batch} found non_conformant by inspector, record at log #{at}" in text
    cli.submit_wait("inspector", {**failed, **when(7), "disposition": "conformant"})
    assert cli.json("trace", "history", tin)["state"]["held_at"] is None
    cli.submit_wait("processor", {**sell_tin, **when(8)})


@cache
def epcis_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((EPCIS / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def test_epcis_import_export(testnet4, tmp_path):  # noqa: F811
    """Shared GS1 examples imported event by event; a code's history exported schema-valid.

    The examples only observe codes (none commissions one), so the test commissions them
    first; 9.6.1 and 9.6.3 share two SGTINs on purpose (one pallet's story).
    """
    cli = Cli(testnet4, tmp_path)
    ex = EPCIS / "JSON"
    e2017, e2018 = f"{SG}:0614141.107346.2017", f"{SG}:0614141.107346.2018"
    pallet = "urn:epc:id:sscc:0614141.1234567890"
    farm = cli.key("farm")

    # before commissioning: every event is refused (unknown codes), exit 1, nothing stored
    r = cli.run("epcis", "import", str(ex / "Example_9.6.1-ObjectEvent.jsonld"), "--key", farm)
    assert r.returncode == 1, r.stderr
    assert r.stdout.count("refused") == 2
    assert "0 of 2 events imported" in r.stdout
    assert "unknown-code" in r.stdout
    cli.refused(1, "trace", "history", e2017)

    # (dated before the examples' events: a holder's event is not dated before it held the
    # goods, rule event-time)
    cli.submit_wait("farm", {**commission(e2017, e2018), **LONG_AGO})
    rep = cli.json("epcis", "import", str(ex / "Example_9.6.1-ObjectEvent.jsonld"), "--key", farm)
    assert (rep["imported"], rep["refused"]) == (2, 0)
    assert [e["status"] for e in rep["events"]] == ["imported", "imported"]
    assert all(e["log_index"] > 0 and len(e["record_id"]) == 64 for e in rep["events"])
    assert rep["events"][1]["codes"] == [normalize_code(e2018)]
    # a re-run (after an interruption, say) skips what is on the chain by its eventID
    again = cli.json("epcis", "import", str(ex / "Example_9.6.1-ObjectEvent.jsonld"), "--key", farm)
    assert (again["imported"], again["skipped"], again["refused"]) == (0, 2, 0)
    assert [e["record_id"] for e in again["events"]] == [e["record_id"] for e in rep["events"]]
    assert len(cli.history(e2017)) == 2  # commissioned, and the example's one event

    # the aggregation example names a pallet nobody commissioned: refused, exit 1
    agg = str(ex / "Example_9.6.3-AggregationEvent.jsonld")
    r = cli.run("epcis", "import", agg, "--key", farm, "--json")
    assert r.returncode == 1, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["imported"], rep["refused"]) == (0, 1)
    assert "rule unknown-code" in rep["events"][0]["reason"]
    # once the pallet exists, packed with the two items and the two classes the document
    # lists as its content, the same document imports
    lots = ["urn:epc:idpat:sgtin:4012345.098765.*", "urn:epc:class:lgtin:4012345.012345.998877"]
    cli.submit_wait(
        "farm", {**commission(), **LONG_AGO, "quantityList": [{"epcClass": c} for c in lots]}
    )
    packing = {**aggregate("ADD", pallet, [e2017, e2018], "packing", 2), **LONG_AGO}
    packing["childQuantityList"] = [{"epcClass": c} for c in lots]
    cli.submit_wait("farm", packing)
    out = cli.ok("epcis", "import", agg, "--key", farm)
    assert "event   0: imported" in out
    assert "1 of 1 events imported" in out

    # an event naming no trace code is refused at import, before anything is signed
    r = cli.run("epcis", "import", str(ex / "WithSensorData/SensorDataExample3.jsonld"),
                "--key", farm)  # fmt: skip
    assert r.returncode == 1
    assert "names no trace code" in r.stdout
    assert "0 of 1" in r.stdout

    # a document with events whose codes are fresh imports in full into this testnet
    pd = ex / "PersistentDisposition-example.jsonld"
    doc = json.loads(pd.read_text(encoding="utf-8"))
    codes = sorted({c for ev in doc["epcisBody"]["eventList"] for c in ev.get("epcList", [])})
    cli.submit_wait("farm", {**commission(*codes), **LONG_AGO})
    rep = cli.json("epcis", "import", str(pd), "--key", farm)
    assert (rep["imported"], rep["refused"]) == (2, 0)

    # export: the code's whole committed history, schema-valid EPCIS 2.0
    hist = cli.history(e2018)
    assert len(hist) == 5  # commissioned, shipped, received, packed, observed on the pallet
    out_file = tmp_path / "e2018.jsonld"
    written = cli.json("epcis", "export", e2018, "--out", str(tmp_path / "h2.jsonld"))
    assert (written["events"], written["file"]) == (5, str(tmp_path / "h2.jsonld"))
    msg = cli.ok("epcis", "export", e2018, "--out", str(out_file))
    assert f"5 events of {e2018} -> {out_file}" in msg
    exported = json.loads(out_file.read_text(encoding="utf-8"))
    errors = sorted(epcis_validator().iter_errors(exported), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert exported["type"] == "EPCISDocument"
    # the code's state when exported (QA: a code born recalled exported as "active" only)
    assert exported["suyuan:state"] == {"code": normalize_code(e2018), "custodian": "farm",
                                        "status": "active", "recalled": False,
                                        "container": normalize_code(pallet),
                                        "disposition": "in_progress"}  # fmt: skip
    events = exported["epcisBody"]["eventList"]
    assert [ev["type"] for ev in events] == [
        "ObjectEvent",
        "ObjectEvent",
        "ObjectEvent",
        "AggregationEvent",
        "AggregationEvent",
    ]
    assert events[1]["bizStep"] == "shipping"
    assert events[2]["bizStep"] == "receiving"
    # this chain's own export, imported again: every event is already here
    back = cli.json("epcis", "import", str(out_file), "--key", farm)
    assert (back["imported"], back["skipped"], back["refused"]) == (0, 5, 0)
    assert len(cli.history(e2018)) == 5
    # QA: an export edited by hand kept its record id and was "skipped" though it was new
    doc = json.loads(out_file.read_text(encoding="utf-8"))
    first = doc["epcisBody"]["eventList"][0]
    first["epcList"] = [f"{SG}:0614141.107346.2099"]
    first.pop("eventID", None)
    edited = tmp_path / "edited.jsonld"
    edited.write_text(json.dumps(doc), encoding="utf-8")
    rep = cli.json("epcis", "import", str(edited), "--key", farm)
    assert [e["status"] for e in rep["events"]] == ["imported"] + ["skipped"] * 4
    # ... and an eventID the chain knows, on another event, was "skipped" too: refused
    ex961 = json.loads((ex / "Example_9.6.1-ObjectEvent.jsonld").read_text(encoding="utf-8"))
    ex961["epcisBody"]["eventList"][0]["bizStep"] = "receiving"
    clash = tmp_path / "clash.jsonld"
    clash.write_text(json.dumps(ex961), encoding="utf-8")
    r = cli.run("epcis", "import", str(clash), "--key", farm, "--json")
    assert r.returncode == 1, r.stderr
    rows = json.loads(r.stdout)["events"]
    assert rows[0]["status"] == "refused"
    assert "already names another event on this chain" in rows[0]["reason"]
    assert rows[1]["status"] == "skipped"
    # stdout export is the same document shape
    again = json.loads(cli.ok("epcis", "export", pallet))
    assert not list(epcis_validator().iter_errors(again))
    assert len(again["epcisBody"]["eventList"]) == 2

    # sealed attributes: a price only the author and the regulator can read
    code = f"{SG}:6901234.012345.SEALED1"
    draft = cli.draft(
        commission(code),
        attributes={"origin": "Henan"},
        seal={"to": ["regulator"], "attributes": {"price_cny": 12.5, "supplier": "农场 7"}},
    )
    info = cli.json("record", "submit", str(draft), "--key", farm, "--wait")
    assert info["committed"] is True
    rid = info["record_id"]
    payload = base64.b64decode(cli.json("record", "get", rid)["envelope"]["payload"]).decode()
    assert "12.5" not in payload  # the node holds ciphertext only
    assert "supplier" in payload  # (names are public)
    for member in ("regulator", "farm"):
        got = cli.json("record", "get", rid, "--key", cli.key(member))
        assert got["opened"] == {"price_cny": 12.5, "supplier": "农场 7"}
        assert got["sealed_for_others"] == []
    other = cli.json("record", "get", rid, "--key", cli.key("slaughterhouse"))
    assert (other["opened"], sorted(other["sealed_for_others"])) == ({}, ["price_cny", "supplier"])
    plain = cli.json("record", "get", rid)  # no key: public attributes, sealed names only
    assert (plain["attributes"], plain["sealed"]) == (
        {"origin": "Henan"},
        ["price_cny", "supplier"],
    )
    assert "sealed price_cny, supplier (a recipient opens them" in cli.ok("record", "get", rid)
    shown = cli.ok("record", "get", rid, "--key", cli.key("regulator"))
    assert 'sealed supplier: "农场 7"' in shown
    # QA: another key under the regulator's name was told "(not sealed for regulator)"
    from node.keys import KeyPair, write_key_file

    impostor = tmp_path / "impostor" / "regulator.key"
    impostor.parent.mkdir()
    write_key_file(impostor, KeyPair.generate("regulator"), None)
    line = cli.refused(2, "record", "get", rid, "--key", str(impostor))
    assert "is not 'regulator''s key in the genesis" in line

    # attachments: a lab report named by its SHA-256; anyone holding the file can check it
    report = tmp_path / "检测报告-7.pdf"
    report.write_bytes(b"%PDF-1.7 lab report: E. coli not detected\n")
    code = f"{SG}:6901234.012345.ATTACH1"
    info = cli.json("record", "submit", str(cli.draft(commission(code))), "--key", farm,
                    "--attach", str(report), "--wait")  # fmt: skip
    rid = info["record_id"]
    got = cli.json("record", "get", rid, "--attachment", str(report))
    assert got["attachments"] == [
        {
            "name": "检测报告-7.pdf",
            "sha256": hashlib.sha256(report.read_bytes()).hexdigest(),
            "media_type": "application/pdf",
        }
    ]
    report.write_bytes(report.read_bytes().replace(b"not detected", b"detected"))
    line = cli.refused(3, "record", "get", rid, "--attachment", str(report))
    assert "attachment digest(s) of record" in line

    # error declarations (EPCIS 2.0): QA found one refused (rule event-id), and a
    # destruction recorded by mistake closed its code for good
    code = f"{SG}:6901234.012345.DECL1"
    e_born, e_gone = (f"urn:uuid:4b1d0000-0000-4000-8000-00000000000{i}" for i in (1, 2))
    cli.submit_wait("farm", {**commission(code), "eventID": e_born})
    gone = {**commission(code, day=2), "action": "OBSERVE", "bizStep": "destroying",
            "disposition": "destroyed", "eventID": e_gone}  # fmt: skip
    gone_id = cli.submit_wait("farm", gone)["record_id"]
    assert cli.graph("back", code)["nodes"][0]["status"] == "closed"
    declared = {**gone, "errorDeclaration": {"declarationTime": "2026-03-02T10:00:00+08:00",
                                             "reason": "did_not_occur"}}  # fmt: skip
    doc = {"type": "EPCISDocument", "epcisBody": {"eventList": [gone, declared]}}
    (tmp_path / "decl.jsonld").write_text(json.dumps(doc))
    rep = cli.json("epcis", "import", str(tmp_path / "decl.jsonld"), "--key", farm)
    assert [e["status"] for e in rep["events"]] == ["skipped", "imported"]
    assert cli.graph("back", code)["nodes"][0]["status"] == "active"  # reopened
    hist = cli.history(code)
    assert [(h["error_declaration"], h["declared_by"]) for h in hist] == [
        (None, None),
        (None, rep["events"][1]["record_id"]),
        ({"reason": "did_not_occur"}, None),
    ]
    assert hist[1]["record_id"] == gone_id
    human = cli.ok("trace", "history", code)
    assert "destroying (OBSERVE destroyed)  [declared in error by record" in human
    assert f"ERROR DECLARATION (did_not_occur) of eventID {e_gone}" in human
    again = cli.json("epcis", "import", str(tmp_path / "decl.jsonld"), "--key", farm)
    assert [e["status"] for e in again["events"]] == ["skipped", "skipped"]
    line = cli.refused(1, "record", "submit", str(cli.draft(declared)), "--key", farm)
    assert "rule error-declaration" in line
    assert "already declared in error" in line

    # a producer's own recall (QA: only a regulator could recall; a drug's authorisation
    # holder recalls what it made): what another producer made from it is named, exit 1
    mine, theirs = f"{SG}:6901234.012345.OWN1", f"{SG}:6901234.012345.OWN2"
    cli.submit_wait("farm", commission(mine))
    cli.accept(cli.handoff("farm", "processor", mine, day=2), "processor")
    cli.submit_wait("processor", transform([mine], [theirs], "killing", 3))
    box = "urn:epc:id:sscc:6903456.0000000707"
    pack = {"type": "AggregationEvent", **when(3, 9), "action": "ADD", "bizStep": "packing",
            "parentID": box, "childEPCs": [theirs]}  # fmt: skip
    cli.submit_wait("processor", pack)
    r = cli.run("recall", mine, "--key", farm, "--reason", "own recall", "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["left_to_their_producers"] == {"processor": [canon(theirs).pop()]}
    assert out["containers"] == []  # (QA: it named the box, which holds nothing recalled)
    assert "recall of" in r.stderr
    assert "INCOMPLETE: 1 affected code(s) were made by other producers (processor)" in r.stderr
    assert cli.graph("back", mine)["nodes"][0]["recalled"] is True
    assert cli.graph("back", theirs)["nodes"][0]["recalled"] is False
    # the regulator's recall of what the producer recalled is written all the same (QA: it
    # wrote nothing, and the producer's declaration of its own recall then lifted it)
    [own_rec] = [x["record_id"] for x in out["records"]]
    ordered = cli.run("recall", mine, "--key", cli.key("regulator"), "--json")
    assert len(json.loads(ordered.stdout)["records"]) == 1, ordered.stderr
    cli.json("record", "declare", own_rec, "--key", farm, "--wait")
    assert cli.graph("back", mine)["nodes"][0]["recalled"] is True

    # a regulator's recall (the CLI gives it an eventID) declared in error by the regulator
    # lifts it; `record declare` writes the declaration (QA: a CLI recall had no eventID, so
    # it could never be declared)
    lifted = f"{SG}:6901234.012345.LIFT1"
    cli.submit_wait("farm", commission(lifted))
    recall = cli.json("recall", lifted, "--key", cli.key("regulator"), "--reason", "test")
    [rec_id] = [r["record_id"] for r in recall["records"]]
    line = cli.refused(1, "record", "declare", rec_id, "--key", farm, "--wait")
    assert "may not declare an event of 'regulator' in error" in line
    got = cli.json("record", "declare", rec_id, "--key", cli.key("regulator"),
                   "--reason", "did_not_occur", "--wait")  # fmt: skip
    assert got["committed"] is True
    assert cli.graph("back", lifted)["nodes"][0]["recalled"] is False
    shown = cli.json("record", "get", rec_id)
    assert shown["declared_by"] == got["record_id"]
    # its proof still verifies (it was committed), and `prove` says it no longer stands
    # (QA-U: nothing told the one shown the bundle)
    r = cli.run("prove", rec_id, "--out", str(tmp_path / "declared.json"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["declared_by"] == got["record_id"]
    assert r.stderr.strip() == (
        f"warning: record {rec_id} was declared in error by record {got['record_id']}: this "
        "bundle proves it was committed, not that it stands; `suyuan prove "
        f"{got['record_id']}` proves the declaration"
    )
    assert cli.json("record", "get", got["record_id"])["error_declaration"]["reason"] == (
        "did_not_occur"
    )
    # run again (a retry after its --wait timed out): the same declaration, committed
    # already, exit 0 (QA: refused, where record submit answers "already committed")
    again = cli.json("record", "declare", rec_id, "--key", cli.key("regulator"),
                     "--reason", "did_not_occur", "--wait")  # fmt: skip
    assert (again["record_id"], again["already_committed"]) == (got["record_id"], True)
    line = cli.refused(1, "record", "declare", rec_id, "--key", cli.key("regulator"))
    assert "already declared in error" in line


def test_an_offer_lists_a_containers_contents_and_the_accept_holds_it_to_them(
    testnet4,  # noqa: F811
    tmp_path,
):
    # QA-R: the sender unpacked two of a case's three packs after its offer, and the
    # receiver's accept took on the lighter case without a word
    cli = Cli(testnet4, tmp_path)
    x1, x2 = (f"{SG}:6903456.055555.{n}" for n in (1, 2))
    case = "urn:epc:id:sscc:6903456.0000000555"
    cli.submit_wait("processor", commission(x1, x2, case, day=6))
    cli.submit_wait("processor", aggregate("ADD", case, [x1, x2], "packing", 6))
    offer = tmp_path / "case.json"
    at = when(6, 20)["eventTime"]
    got = cli.json("handoff", "offer", case, "--key", cli.key("processor"), "--to",
                   "distributor", "--out", str(offer), "--time", at)  # fmt: skip
    assert got["contents"] == {normalize_code(case): sorted(canon(x1, x2))}
    cli.submit_wait("processor", aggregate("DELETE", case, [x1], "unpacking", 7))
    line = cli.refused(1, "handoff", "accept", str(offer), "--key", cli.key("distributor"))
    assert "rule handoff-contents:" in line, line
    assert f"1 code left it ({normalize_code(x1)})" in line, line
    assert cli.custodian(case) == "processor"
    again = tmp_path / "case2.json"
    cli.ok("handoff", "offer", case, "--key", cli.key("processor"), "--to", "distributor",
           "--out", str(again), "--time", when(7, 20)["eventTime"])  # fmt: skip
    out = cli.ok("handoff", "accept", str(again), "--key", cli.key("distributor"), "--wait")
    assert f"{normalize_code(case)} holds 1 code, as offered" in out
    assert cli.custodian(x2) == "distributor"
    assert cli.custodian(x1) == "processor"
