"""The dev host runs timer triggers on their NCRONTAB schedule, read as the Functions host reads it."""

import json
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from headoffice.devhost import DevHost, next_occurrence, parse_schedule, resolve_settings
from headoffice.stand_ins import free_port
from tests.builders import make_product
from tests.processes import wait_for



# --- pieces --------------------------------------------------------------------------------


def test_a_schedule_naming_an_app_setting_is_read_from_that_setting():
    assert resolve_settings("%CATALOG_COMPACT_SCHEDULE%", {"CATALOG_COMPACT_SCHEDULE": "0 30 2 * * *"}) == "0 30 2 * * *"
    assert resolve_settings("0 */5 * * * *", {}) == "0 */5 * * * *"
    with pytest.raises(ValueError, match="CATALOG_COMPACT_SCHEDULE"):
        resolve_settings("%CATALOG_COMPACT_SCHEDULE%", {})


def test_ncrontab_has_six_fields_with_seconds_first_in_utc():
    nightly = parse_schedule("0 30 2 * * *")
    assert next_occurrence(nightly, datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)) == datetime(2026, 12, 2, 2, 30, tzinfo=timezone.utc)
    assert next_occurrence(parse_schedule("*/20 * * * * *"), datetime(2026, 12, 1, 10, 0, 5, tzinfo=timezone.utc)) == \
        datetime(2026, 12, 1, 10, 0, 20, tzinfo=timezone.utc)
    for wrong in ("30 2 * * *", "00:05:00", "0 61 * * * *", ""):
        with pytest.raises(ValueError, match="six fields"):
            parse_schedule(wrong)


# --- a host running timers -------------------------------------------------------------------

TIMER_APP = '''
import azure.functions as func

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%")
def tick(timer: func.TimerRequest) -> None:
    with open("TICKS", "a") as f:
        f.write(f"{timer.past_due}\\n")


@app.timer_trigger(arg_name="timer", schedule="%UNSET_SCHEDULE%")
def never(timer: func.TimerRequest) -> None:
    raise AssertionError("a timer whose schedule does not resolve must not run")
'''


def test_a_timer_function_runs_on_its_schedule_and_one_in_error_leaves_the_others_running(tmp_path):
    ticks = tmp_path / "ticks.log"
    (tmp_path / "function_app.py").write_text(TIMER_APP.replace("TICKS", str(ticks)))
    host = DevHost(tmp_path, port=free_port(), env={"TICK_SCHEDULE": "* * * * * *"}).start()
    try:
        assert set(host.timers.schedules) == {"tick"} and "UNSET_SCHEDULE" in host.timers.errors["never"]
        assert wait_for(lambda: ticks.exists() and len(ticks.read_text().splitlines()) >= 2)
    finally:
        host.stop()
    assert set(ticks.read_text().splitlines()) == {"False"}


def test_the_catalog_compaction_timer_purges_tombstones_when_it_fires(storage, monkeypatch):
    import branchsync_cloud.http

    monkeypatch.setenv("AzureWebJobsStorage", storage)
    monkeypatch.setenv("BRANCHSYNC_ADMIN_KEY", "k")
    monkeypatch.setenv("BRANCHSYNC_TABLE_PREFIX", "t" + uuid.uuid4().hex[:12])
    monkeypatch.setenv("CATALOG_COMPACT_SCHEDULE", "0 30 2 * * *")
    monkeypatch.setenv("LAKE_WRITE_SCHEDULE", "0 5 * * * *")
    monkeypatch.setattr(branchsync_cloud.http, "_service", None)  # built from this environment on first use
    host = DevHost(port=free_port())
    assert host.timers.schedules == {"compact_catalog": "0 30 2 * * *", "write_lake": "0 5 * * * *"}
    assert host.timers.errors == {}
    from shared.models import CatalogImport

    service = branchsync_cloud.http.get_service()
    service.import_catalog(CatalogImport(products=[make_product(f"P{i}") for i in range(5)]))
    service.delete_sku("P0")
    service.import_catalog(CatalogImport(products=[make_product(f"P{i}", 1) for i in range(1, 5)]))
    host.timers.fire("compact_catalog")
    rows = [(r.sku, r.version) for s in service.store.scan_catalog() for r in s.rows]
    assert sorted(rows) == [("P1", 7), ("P2", 8), ("P3", 9), ("P4", 10)]
    assert service.store.get_catalog_counter().counter.tombstone_horizon == 6
    assert json.loads(service.compact_catalog().model_dump_json())["purged"] == 0


def test_a_timer_function_runs_by_hand_through_the_hosts_admin_route_and_only_a_timer_that_is_not_in_error(tmp_path):
    ticks = tmp_path / "ticks.log"
    (tmp_path / "function_app.py").write_text(TIMER_APP.replace("TICKS", str(ticks)))
    # A schedule far away: only the admin route runs it.
    host = DevHost(tmp_path, port=free_port(), env={"TICK_SCHEDULE": "0 0 0 1 1 *"}).start()
    try:
        base = f"http://127.0.0.1:{host.server.config.port}/admin/functions"
        assert httpx.post(f"{base}/Tick", json={"input": ""}).status_code == 202  # names are case-insensitive
        assert wait_for(lambda: ticks.exists() and ticks.read_text() == "False\n")
        assert httpx.post(f"{base}/tick", content=b"").status_code == 400  # the host wants a JSON object, {} at least
        missing, in_error = httpx.post(f"{base}/nope", json={}), httpx.post(f"{base}/never", json={})
        assert (missing.status_code, in_error.status_code) == (404, 404)
        assert "UNSET_SCHEDULE" in in_error.json()["error"]["message"]
    finally:
        host.stop()
    assert ticks.read_text() == "False\n"


def test_the_lake_timer_run_through_the_admin_route_writes_the_applied_sales_to_blob_storage(storage, monkeypatch):
    import branchsync_cloud.http
    from azure.storage.blob import ContainerClient

    from shared.encoding import encode_batch, from_queue_text
    from tests.builders import make_batch, make_sale3
    from tests.cloud.test_service import enroll

    container = "lake-" + uuid.uuid4().hex[:12]
    monkeypatch.setenv("AzureWebJobsStorage", storage)
    monkeypatch.setenv("BRANCHSYNC_ADMIN_KEY", "k")
    monkeypatch.setenv("BRANCHSYNC_TABLE_PREFIX", "t" + uuid.uuid4().hex[:12])
    monkeypatch.setenv("BRANCHSYNC_LAKE_CONTAINER", container)
    monkeypatch.setenv("CATALOG_COMPACT_SCHEDULE", "0 30 2 * * *")
    monkeypatch.setenv("LAKE_WRITE_SCHEDULE", "0 0 0 1 1 *")
    monkeypatch.setattr(branchsync_cloud.http, "_service", None)  # built from this environment on first use
    monkeypatch.setattr(branchsync_cloud.http, "_settings", None)
    monkeypatch.setattr(branchsync_cloud.http, "_lake_writer", None)
    host = DevHost(port=free_port()).start()
    try:
        service = branchsync_cloud.http.get_service()
        secret = enroll(service, "dhaka-1")
        service.apply_message(from_queue_text(encode_batch(make_batch("dhaka-1", [make_sale3(1), make_sale3(2)]), secret)))
        answer = httpx.post(f"http://127.0.0.1:{host.server.config.port}/admin/functions/write_lake", json={})
        assert answer.status_code == 202
        blobs = ContainerClient.from_connection_string(storage, container)
        wanted = {"sales/date=2026-11-28/branch=dhaka-1/part-0.parquet", "payments/date=2026-11-28/branch=dhaka-1/part-0.parquet"}
        assert wait_for(lambda: blobs.exists() and wanted <= {b.name for b in blobs.list_blobs()})
    finally:
        host.stop()
