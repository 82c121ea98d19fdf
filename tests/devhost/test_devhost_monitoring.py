"""Monitoring and the pull's `version` through the real app served by the dev host."""

import sys
import time

import httpx

from headoffice.devhost import DevHost
from headoffice.stand_ins import free_port
from shared.enrollment import decode_code
from shared.signing import sign_request


def admin(cloud) -> dict:
    return {"X-Branchsync-Admin-Key": cloud.env["BRANCHSYNC_ADMIN_KEY"]}


def enrolled(cloud, name) -> str:
    created = httpx.post(f"{cloud.url}/api/manage/branches", json={"name": name}, headers=admin(cloud))
    assert created.status_code == 201, created.text
    code = decode_code(created.json()["enrollment_code"])
    return httpx.post(f"{code.url}/api/enroll", json={"token": code.token}).json()["secret"]


def signed_pull(cloud, name, secret, **query):
    query = {k: str(v) for k, v in query.items()}
    headers = sign_request(secret, name, "GET", "/api/pull", query, b"", time.time())
    return httpx.get(f"{cloud.url}/api/pull", params=query, headers=headers, timeout=10)


def test_a_pull_with_the_branch_version_is_answered_and_logged(cloud, branch_name):
    secret = enrolled(cloud, branch_name)
    r = signed_pull(cloud, branch_name, secret, cursor=0, pending=0, version="0.4.0")
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while f"pull branch={branch_name} " not in cloud.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in cloud.log.read_text().splitlines() if f"pull branch={branch_name} " in line]
    assert lines and lines[-1].endswith(" pending=0 version=0.4.0")


def test_a_pull_with_a_malformed_version_is_a_400_json_answer(cloud, branch_name):
    secret = enrolled(cloud, branch_name)
    r = signed_pull(cloud, branch_name, secret, cursor=0, version="<script>")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request" and "version" in r.json()["error"]["message"]


def test_the_app_serves_when_monitoring_is_configured_but_the_exporter_is_not_installed(storage, monkeypatch):
    import branchsync_cloud.http
    from branchsync_cloud import telemetry

    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", None)  # as on a lean local install
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=00000000-0000-0000-0000-000000000000")
    monkeypatch.setenv("AzureWebJobsStorage", storage)
    monkeypatch.setenv("BRANCHSYNC_ADMIN_KEY", "k")
    monkeypatch.setattr(branchsync_cloud.http, "_service", None)
    monkeypatch.setattr(branchsync_cloud.http, "_settings", None)
    host = DevHost(port=free_port()).start()
    try:
        base = f"http://127.0.0.1:{host.server.config.port}"
        assert httpx.get(f"{base}/api/health").json() == {"status": "ok"}
        r = httpx.get(f"{base}/api/manage/branches", headers={"X-Branchsync-Admin-Key": "k"}, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        host.stop()
