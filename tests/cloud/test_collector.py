"""The worker's garbage collector is set once its Service is built (collector.py)."""

import subprocess
import sys

from branchsync_cloud import collector, http
from branchsync_cloud.settings import Settings

# Azurite's well-known development account; building the Service opens no connection.
DEV_STORAGE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDX"
               "J1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
               "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")


def test_the_worker_settles_its_collector_once_when_its_service_is_first_built(monkeypatch):
    settled = []
    monkeypatch.setattr(http.collector, "settle", lambda: settled.append(http._service))
    monkeypatch.setattr(http, "_service", None)
    monkeypatch.setattr(http, "_settings", Settings(storage=DEV_STORAGE, admin_key="k" * 32, table_prefix="t"))
    service = http.get_service()
    assert http.get_service() is service
    assert settled == [service]


def test_settling_leaves_what_is_alive_out_of_collections_and_collects_young_objects_less_often():
    # In a process of its own: freezing and the thresholds are process-wide.
    probe = ("import gc; from branchsync_cloud import collector; before = gc.get_freeze_count(); collector.settle(); "
             "print(gc.get_threshold(), before, gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["(50000,", "10,", "10)", "0", "True"]
    assert collector.THRESHOLDS == (50_000, 10, 10)
