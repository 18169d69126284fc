"""One process, one block: sign N bench records, admit them (signatures, parsing, the rules
for new records, replay checks), build, validate and commit them, on a copy of a stopped
testnet node's store. Made to be counted in instructions, which, unlike time, do not
drift with the VM: run it under callgrind for two N and take the difference per record.

    suyuan bench --nodes 4 --records 2000 --seconds 5 --dir DIR
    valgrind --tool=callgrind python -m bench.record_path --dir DIR --records 200
    valgrind --tool=callgrind python -m bench.record_path --dir DIR --records 800
    # ("Collected" of the second - of the first) / 600 = instructions per record

The copy is made in a temporary folder and deleted; the source is not written.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from node.chain import EXTRA_DBS, ChainState
from node.errors import LedgerError
from node.genesis import Genesis
from node.keys import load_key_file
from node.store import Store
from proto import types_pb2
from testnet.loadgen import AUTHORS, sign_one
from testnet.manifest import Manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="a stopped testnet's folder")
    ap.add_argument("--records", type=int, default=200)
    args = ap.parse_args()
    if not 1 <= args.records <= 2000:
        raise SystemExit("--records 1-2000 (one block)")
    man = Manifest.load(args.dir)
    g = Genesis.load(man.genesis)
    keys = [load_key_file(man.key_file(a)) for a in AUTHORS]
    pbs = [
        types_pb2.Envelope.FromString(sign_one(g, keys[i % len(keys)], "rp", i, 200))
        for i in range(args.records)
    ]
    with tempfile.TemporaryDirectory(prefix="suyuan-record-path-") as tmp:
        work = Path(tmp) / "store"
        shutil.copytree(args.dir / "node0" / "store", work)
        store = Store.open(work, g.hash, create=False, extra_dbs=EXTRA_DBS)
        try:
            chain = ChainState(store, g)
            results, _ = chain.admission_checks(pbs)
            bad = [r for r in results if isinstance(r, LedgerError)]
            if bad:
                raise SystemExit(f"admission refused a record: {bad[0]}")
            cands = [(pb, r) for pb, r in zip(pbs, results, strict=True)]
            h = store.head().height + 1
            block, dropped = chain.build_block(h, 0, g.validators[0], cands)  # type: ignore[arg-type]
            if dropped:
                raise SystemExit(f"block {h}: {dropped[0].reason}")
            chain._prepared.clear()  # validated as another validator would
            known = [r for _, r in cands]
            prepared = chain.validate_block(block, verify_signatures=False, known=known)  # type: ignore[arg-type]
            chain.commit(prepared, types_pb2.CommitCertificate(height=h))
        finally:
            store.close()
    print(f"{args.records} records admitted, built, validated and committed")


if __name__ == "__main__":
    main()
