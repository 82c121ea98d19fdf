"""The till benchmark at tiny sizes, so it keeps running: a real home, the real server, the
real console script. Counts and the table's rows only; no timing is asserted."""

from bench import till


def test_the_till_benchmark_fills_a_home_and_reports_every_figure(tmp_path, capsys):
    table = till.main(["--products", "300", "--events", "500", "--samples", "20", "--launches", "2",
                       "--work", str(tmp_path / "work"), "--exe", str(tmp_path / "no-exe")])
    rows = {what.split(" (")[0].split(":")[0]: figure for what, figure, _goal in table}
    assert rows["filled home"].endswith(" s")
    assert "300 products, 500 events" in table[0][0]
    for name in ("search, store call", "search, GET /api/products", "scan to line added, GET /api/products/code/{barcode}",
                 "record a split sale", "GET /api/status"):
        assert rows[name].startswith("p50 ") and " p99 " in rows[name], name
    assert sum(1 for what, *_ in table if what.startswith("branchsync (console script)")) == 3
    assert "branchsync till benchmark" in capsys.readouterr().out
    assert not (tmp_path / "work").exists()


def test_the_bulk_load_leaves_the_rows_record_sale_would_numbered_gap_free_and_acknowledged(tmp_path):
    store, rows = till.fill(tmp_path / "home", 120, 300)
    with store:
        status = store.status()
        assert (status["products"], status["sales_recorded"], status["last_seq"]) == (120, 300, 300)
        assert status["pending"] == 0 and status["applied_through"] == 300
        assert [r.sale.seq for r in store.recent_sales(3)] == [300, 299, 298]
        assert len({r.sale.sale_id for r in store.recent_sales(300)}) == 300
        assert store.find_by_code(rows[5]["barcode"]).sku == rows[5]["sku"]
        assert store.record_sale(till.parse_items([rows[0]["sku"] + "=1"]), "cash").seq == 301
