"""Child process for tests/node/test_store_crash.py (not a test module).

``python -m tests.node.store_crash_child append DIR SEED``: append workload blocks after
the head forever, printing ``committed H`` after each durable append (so the parent knows
what must survive a SIGKILL).

``python -m tests.node.store_crash_child fsize DIR SEED LIMIT``: cap the size of files this
process may write (RLIMIT_FSIZE, a stand-in for a full disk), append until the store
refuses, print ``refused HEIGHT MESSAGE`` and check the store still reads as before.
"""

from __future__ import annotations

import resource
import signal
import sys

from node.errors import StorageError
from node.store import Store
from tests.node.store_workload import GENESIS, make_block


def append(path: str, seed: int) -> None:
    with Store.open(path, GENESIS) as store:
        print(f"ready {store.head().height}", flush=True)
        while True:
            h = store.head().height + 1
            store.append_block(make_block(seed, h))
            print(f"committed {h}", flush=True)


def fill_disk(path: str, seed: int, limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail with EFBIG
    with Store.open(path, GENESIS) as store:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        while True:
            before = store.head()
            try:
                store.append_block(make_block(seed, before.height + 1))
            except StorageError as e:
                assert store.head() == before
                assert store.get_block(before.height + 1) is None
                assert store.log_root(before.log_size) == before.log_root
                print(f"refused {before.height} {e}", flush=True)
                return


if __name__ == "__main__":
    mode, directory, seed_text, *rest = sys.argv[1:]
    if mode == "append":
        append(directory, int(seed_text))
    else:
        fill_disk(directory, int(seed_text), int(rest[0]))
