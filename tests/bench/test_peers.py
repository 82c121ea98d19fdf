"""The branchsync-beside-PouchDB comparison, run end to end at small sizes so it cannot rot.

Real processes throughout: Azurite, the dev host, pouchdb-server, pouchdb-node with LevelDB,
the real branch client, and the shaping proxy in front of both. Only counts are asserted.
"""

import shutil

import pytest

from bench.peers import DRIVER, POUCHDB_SERVER, parser, run, table

pytestmark = [
    pytest.mark.azurite,
    pytest.mark.skipif(not shutil.which("node") or not POUCHDB_SERVER.exists(),
                       reason="needs node and the pinned PouchDB packages: run `make setup`"),
]


def test_every_workload_finishes_on_both_sides_over_both_links_with_bytes_counted(tmp_path):
    args = parser().parse_args(["--sales", "50", "--products", "2600", "--reprice", "20", "--delete", "5",
                                "--latency-ms", "5", "--down-kbit", "50000", "--up-kbit", "50000"])
    rows = run(args, work=tmp_path)

    assert [(w.split(",")[0], link.split()[0]) for w, link, *_ in rows] == [
        ("backlog", "loopback"), ("new branch", "loopback"), ("price day", "loopback"),
        ("backlog", "shaped"), ("new branch", "shaped"), ("price day", "shaped")]
    for workload, _, ours, theirs, _ in rows:
        assert ours.down > 0 and ours.up > 0 and theirs.down > 0 and theirs.up > 0, workload
    backlog, pull, price_day = rows[0], rows[1], rows[2]
    assert backlog[2].count == 50 and backlog[3].count == 50  # every sale acknowledged / written
    assert backlog[2].extra["ops"] > 0
    assert pull[2].count == 2600 and pull[3].count == 2600 and pull[2].extra["found"] >= 1
    assert price_day[2].count == 25 and price_day[3].count == 25
    shaped_pull = rows[4]
    assert shaped_pull[2].count == 2595 and shaped_pull[3].count == 2595  # after the first price day's deletes
    assert "| new branch, 2,600 products | loopback |" in table(rows)
    assert DRIVER.exists()
