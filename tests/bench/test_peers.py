"""The branchsync-beside-PouchDB comparison, run end to end at small sizes so it cannot rot.

Real processes throughout: Azurite, the dev host, pouchdb-server, pouchdb-node with LevelDB,
the real branch client, and the shaping proxy in front of both. Only counts are asserted.
"""

import shutil

import pytest

from bench.peers import DRIVER, POUCHDB_SERVER, Result, median_run, parser, run, table

pytestmark = [
    pytest.mark.azurite,
    pytest.mark.skipif(not shutil.which("node") or not POUCHDB_SERVER.exists(),
                       reason="needs node and the pinned PouchDB packages: run `make setup`"),
]


def test_every_workload_finishes_on_both_sides_over_both_links_with_bytes_counted(tmp_path):
    args = parser().parse_args(["--sales", "50", "--products", "2600", "--reprice", "20", "--delete", "5",
                                "--latency-ms", "5", "--down-kbit", "50000", "--up-kbit", "50000", "--repeat", "2"])
    rows = run(args, work=tmp_path)

    assert [(w.split(",")[0], link.split()[0]) for w, link, *_ in rows] == [
        ("backlog", "loopback"), ("new branch", "loopback"), ("price day", "loopback"),
        ("backlog", "shaped"), ("new branch", "shaped"), ("price day", "shaped")]
    for workload, _, ours, theirs, _ in rows:
        assert ours.down > 0 and ours.up > 0 and theirs.down > 0 and theirs.up > 0, workload
    backlog, pull, price_day = rows[0], rows[1], rows[2]
    assert backlog[2].count == 50 and backlog[3].count == 50  # every sale acknowledged / written
    assert backlog[2].extra["ops"] > 0
    # The CPU behind each row, per process: the node client is this process's child, the rest are read by pid.
    assert all("CPU s: till " in notes and "PouchDB client " in notes for *_, notes in rows)
    assert backlog[2].extra["cpu"]["self"] > 0 and backlog[3].extra["cpu"]["children"] > 0
    # The second loopback run pulls after the first run's price day deleted 5.
    assert pull[2].count == pull[3].count and pull[2].count in (2600, 2595) and pull[2].extra["found"] >= 1
    assert price_day[2].count == 25 and price_day[3].count == 25
    shaped_pull = rows[4]
    assert shaped_pull[2].count == 2590 and shaped_pull[3].count == 2590  # after both loopback price days' deletes
    assert f"| new branch, {pull[2].count:,} products | loopback |" in table(rows)
    assert all("speed-ups of the runs" in notes for *_, notes in rows[:3])  # loopback ran twice
    assert not any("speed-ups of the runs" in notes for *_, notes in rows[3:])
    assert DRIVER.exists()


def test_a_repeated_workload_reports_the_run_with_the_median_speed_up():
    runs = [("w", Result(seconds=s, down=1, up=1, count=1), Result(seconds=t, down=1, up=1, count=1), "n")
            for s, t in [(1.0, 3.0), (2.0, 2.0), (1.0, 5.0)]]
    workload, link, ours, theirs, notes = median_run("loopback", runs)
    assert (ours.seconds, theirs.seconds) == (1.0, 3.0)
    assert notes == "n; speed-ups of the runs 3.0x, 1.0x, 5.0x"


def test_without_pouchdb_installed_the_comparison_says_how_to_install_it_and_starts_nothing(tmp_path, monkeypatch):
    import bench.peers

    monkeypatch.setattr(bench.peers, "POUCHDB_SERVER", tmp_path / "missing" / "pouchdb-server")
    with pytest.raises(SystemExit, match="make setup"):
        run(parser().parse_args([]), work=tmp_path / "work")
    assert not (tmp_path / "work").exists()
