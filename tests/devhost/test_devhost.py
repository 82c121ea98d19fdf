"""The dev host: the real function_app served over loopback HTTP and fed by a queue poller."""

import base64
import json
import time
import uuid
from urllib.parse import quote

import httpx
import pytest
from azure.storage.queue import QueueClient

from headoffice.devhost import (DEFAULT_APP_DIR, DevHost, QueueBindingError, bind_queue_body, compile_route, discover,
                                load_app, parse_timespan)
from headoffice.stand_ins import free_port
from shared.encoding import encode_batch
from shared.enrollment import decode_code
from shared.signing import sign_request
from tests.builders import make_batch
from tests.processes import wait_for


def admin(cloud) -> dict:
    return {"X-Branchsync-Admin-Key": cloud.env["BRANCHSYNC_ADMIN_KEY"]}



def signed_pull(cloud, name, secret, **query):
    query = {k: str(v) for k, v in query.items()}
    headers = sign_request(secret, name, "GET", "/api/pull", query, b"", time.time())
    return httpx.get(f"{cloud.url}/api/pull", params=query, headers=headers, timeout=10)


# --- pieces --------------------------------------------------------------------------------


def test_route_templates_match_whole_segments_and_optional_parts():
    assert compile_route("manage/catalog/{sku}").match("/manage/catalog/RICE-5KG").group("sku") == "RICE-5KG"
    assert compile_route("manage/catalog/{sku}").match("/manage/catalog/a/b") is None
    assert compile_route("items/{id:int?}").match("/items") is not None
    assert compile_route("files/{*rest}").match("/files/a/b/c").group("rest") == "a/b/c"
    assert compile_route("health").match("/HEALTH/") is not None


RESERVED_ROUTE_APP = '''
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(ROUTE methods=["GET"])
def NAME(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")
'''


@pytest.mark.parametrize("route, name", [
    ('route="admin/branches", ', "f"), ('route="/Admin/x", ', "f"), ('route="administration", ', "f"),
    ('route="RUNTIME/webhooks", ', "f"), ('route="runtimes", ', "f"), ("", "admin_branches"),
])
def test_the_dev_host_refuses_at_start_up_a_route_the_functions_host_reserves(tmp_path, route, name):
    # The host checks the route alone (routePrefix never counts), lower-cased, as a plain string
    # prefix; a function without a route is served at its name, so the name is checked then.
    (tmp_path / "function_app.py").write_text(RESERVED_ROUTE_APP.replace("ROUTE", route).replace("NAME", name))
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "x"}}}))
    with pytest.raises(SystemExit, match="The specified route conflicts with one or more built in routes"):
        DevHost(tmp_path, port=free_port(), env={})


@pytest.mark.parametrize("route", ['route="manage/admin", ', 'route="api/admin", ', 'route="x-admin", '])
def test_a_route_that_only_contains_a_reserved_word_later_is_served(tmp_path, route):
    (tmp_path / "function_app.py").write_text(RESERVED_ROUTE_APP.replace("ROUTE", route).replace("NAME", "f"))
    host = DevHost(tmp_path, port=free_port(), env={})
    assert [f.route for f in host.http_functions] == [route.split('"')[1]]


def test_every_route_of_the_function_app_passes_the_hosts_reserved_route_check():
    routes = [f.route for f in discover(load_app(DEFAULT_APP_DIR))[0]]
    assert "manage/branches" in routes
    assert not [r for r in routes if r.strip("/").lower().startswith(("admin", "runtime"))]


def test_host_json_timespans_are_read_as_seconds():
    assert parse_timespan("00:00:05") == 5
    assert parse_timespan("00:00:00.250") == 0.25
    assert parse_timespan("1.00:01:00") == 86460
    assert parse_timespan(2000) == 2


# --- HTTP through the real process ----------------------------------------------------------


def test_health_answers_ok(cloud):
    r = httpx.get(f"{cloud.url}/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/manage/branches"), ("POST", "/api/manage/branches"), ("POST", "/api/manage/catalog"),
    ("DELETE", "/api/manage/catalog/RICE"), ("GET", "/api/manage/sales"), ("GET", "/api/manage/reports/price-differences"),
    ("GET", "/api/manage/reports/sales?from=2026-11-01&to=2026-11-30"), ("GET", "/api/manage/reports/shifts"),
    ("GET", "/api/manage/reports/exceptions"), ("POST", "/api/manage/reports/rebuild"),
])
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_admin_endpoints_refuse_a_missing_or_wrong_key_with_401_json(cloud, method, path, key):
    headers = {"X-Branchsync-Admin-Key": key} if key else {}
    r = httpx.request(method, cloud.url + path, headers=headers, content=b'{"name": "x"}')
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("query, said", [
    ({"to": "2026-11-30"}, "query parameter from must be a date"),
    ({"from": "2026-11-31", "to": "2026-12-01"}, "query parameter from must be a date"),
    ({"from": "2026-11-30", "to": "2026-11-01"}, "is before from"),
    ({"from": "2026-11-01", "to": "2026-11-30", "by": "week"}, "by must be one of day, branch"),
    ({"from": "2026-11-01", "to": "2026-11-30", "branch": "no such branch"}, "is not a valid branch name"),
])
def test_a_sales_report_asked_wrongly_gets_a_400_json_answer_saying_what_to_ask(cloud, query, said):
    r = httpx.get(cloud.url + "/api/manage/reports/sales", params=query, headers=admin(cloud))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request" and said in r.json()["error"]["message"]


@pytest.mark.parametrize("path, body, field", [
    ("/api/manage/branches", b"{not json", "body"),
    ("/api/manage/branches", b"", "body"),
    ("/api/manage/branches", b'{"name": "has space"}', "name"),
    ("/api/manage/branches", b'{"name": "ok", "extra": 1}', "extra"),
    ("/api/manage/catalog", b'{"products": [{"sku": "A", "name": "x", "price": -1}]}', "products.0.price"),
    ("/api/manage/catalog", b'{"products": [{"sku": "A", "name": "x", "price": 1.5}]}', "products.0.price"),
    ("/api/enroll", b"[]", "body"),
])
def test_a_bad_body_gets_a_400_json_answer_naming_the_field_never_a_500(cloud, path, body, field):
    r = httpx.post(cloud.url + path, content=body, headers=admin(cloud))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "bad_request" and error["message"].startswith(field)


def test_an_unknown_route_or_method_is_a_json_404(cloud):
    for method, path in [("GET", "/api/nothing-here"), ("DELETE", "/api/health"), ("GET", "/elsewhere")]:
        r = httpx.request(method, cloud.url + path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_route_parameter_arrives_percent_decoded(cloud):
    sku = "চাল-৫কেজি"
    r = httpx.delete(f"{cloud.url}/api/manage/catalog/{quote(sku)}", headers=admin(cloud))
    assert r.status_code == 404 and sku in r.json()["error"]["message"]


def test_an_unsigned_pull_is_refused_with_401_json(cloud):
    r = httpx.get(f"{cloud.url}/api/pull")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_a_branch_enrolled_over_http_pushes_through_the_queue_and_sees_the_ack_on_pull(cloud, branch_name):
    created = httpx.post(f"{cloud.url}/api/manage/branches", json={"name": branch_name}, headers=admin(cloud))
    assert created.status_code == 201, created.text
    code = decode_code(created.json()["enrollment_code"])
    assert code.url == cloud.url  # no BRANCHSYNC_PUBLIC_URL: the admin request's own host
    enrolled = httpx.post(f"{code.url}/api/enroll", json={"token": code.token})
    assert enrolled.status_code == 200, enrolled.text
    secret = enrolled.json()["secret"]

    first = signed_pull(cloud, branch_name, secret, cursor=0, pending=5)
    assert first.status_code == 200, first.text
    push = first.json()["push"]
    batch = make_batch(branch_name, range(1, 6))
    # The branch pushes with the add-only SAS from its pull, as in production.
    QueueClient.from_queue_url(push["queue_url"], credential=push["sas_token"]).send_message(encode_batch(batch, secret))

    acked = wait_for(lambda: signed_pull(cloud, branch_name, secret, cursor=0).json()["applied_through"] == 5)
    assert acked, "the poller did not apply the pushed batch"
    branches = httpx.get(f"{cloud.url}/api/manage/branches", headers=admin(cloud)).json()["branches"]
    [info] = [b for b in branches if b["branch"] == branch_name]
    assert info["sales_applied"] == 5 and info["total_paisa"] == sum(s.total for s in batch.sales)
    export = httpx.get(f"{cloud.url}/api/manage/sales", params={"branch": branch_name}, headers=admin(cloud)).json()
    assert [a["sale"]["seq"] for a in export["sales"]] == [1, 2, 3, 4, 5] and export["next"] is None


# --- the poller's poison handling, with a throwaway app -------------------------------------

THROWAWAY_APP = '''
import pathlib
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
LOG = pathlib.Path(__file__).with_name("deliveries.log")


@app.queue_trigger(arg_name="msg", queue_name="QUEUE", connection="Storage")
def always_fails(msg: func.QueueMessage) -> None:
    with LOG.open("a") as f:
        f.write(f"{msg.dequeue_count} {msg.get_body().decode()}\\n")
    raise RuntimeError("this function always fails")


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
'''


def test_a_message_whose_function_always_raises_ends_in_the_poison_queue(storage, tmp_path):
    queue = "boom-" + uuid.uuid4().hex[:10]
    (tmp_path / "function_app.py").write_text(THROWAWAY_APP.replace("QUEUE", queue))
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {
        "http": {"routePrefix": "x"},
        "queues": {"batchSize": 4, "maxDequeueCount": 3, "visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200"},
    }}))
    host = DevHost(tmp_path, port=free_port(), env={"Storage": storage}).start()
    try:
        assert httpx.get(f"http://127.0.0.1:{host.server.config.port}/x/ping").text == "pong"
        text = base64.b64encode(b"hello").decode()
        QueueClient.from_connection_string(storage, queue).send_message(text)
        poison = QueueClient.from_connection_string(storage, queue + "-poison")
        moved = wait_for(lambda: list(poison.peek_messages(max_messages=5)))
        assert [m.content for m in moved] == [text]
        assert not list(QueueClient.from_connection_string(storage, queue).peek_messages())
        assert (tmp_path / "deliveries.log").read_text().splitlines() == ["1 hello", "2 hello", "3 hello"]
    finally:
        host.stop()


BINDING_APP = '''
import pathlib
import azure.functions as func

app = func.FunctionApp()
LOG = pathlib.Path(__file__).with_name("bodies.log")


@app.queue_trigger(arg_name="msg", queue_name="QUEUE", connection="Storage"DATA_TYPE)
def record(msg: func.QueueMessage) -> None:
    with LOG.open("a") as f:
        f.write(msg.get_body().hex() + "\\n")
'''

NOT_UTF8 = b"BSY1\xff\xfe\x00\x9c" + bytes(range(128, 160))  # like a frame: magic, then binary


def logged(tmp_path) -> list[str]:
    """The bodies the function wrote, once each line is whole (the file exists before its line is written)."""
    log = tmp_path / "bodies.log"
    text = log.read_text() if log.exists() else ""
    return text.split() if text.endswith("\n") else []


def start_binding_host(storage, tmp_path, data_type: str):
    queue = "bind-" + uuid.uuid4().hex[:10]
    (tmp_path / "function_app.py").write_text(BINDING_APP.replace("QUEUE", queue).replace("DATA_TYPE", data_type))
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": {
        "maxDequeueCount": 2, "visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.200"}}}))
    host = DevHost(tmp_path, port=free_port(), env={"Storage": storage}).start()
    return host, QueueClient.from_connection_string(storage, queue), QueueClient.from_connection_string(storage, queue + "-poison")


@pytest.mark.parametrize("data_type", ["", ", data_type=func.DataType.STRING"])
def test_a_string_binding_of_bytes_that_are_not_utf8_fails_before_the_function_and_ends_in_poison(storage, tmp_path, data_type):
    host, queue, poison = start_binding_host(storage, tmp_path, data_type)
    try:
        queue.send_message(base64.b64encode("ঢাকা".encode()).decode())  # UTF-8 binds as a string
        queue.send_message(base64.b64encode(NOT_UTF8).decode())
        moved = wait_for(lambda: list(poison.peek_messages(max_messages=5)))
        assert [base64.b64decode(m.content) for m in moved] == [NOT_UTF8]
        assert wait_for(lambda: logged(tmp_path)) == ["ঢাকা".encode().hex()]  # the other never ran
    finally:
        host.stop()


def test_a_binary_binding_hands_the_function_the_decoded_bytes_exactly(storage, tmp_path):
    host, queue, poison = start_binding_host(storage, tmp_path, ", data_type=func.DataType.BINARY")
    try:
        queue.send_message(base64.b64encode(NOT_UTF8).decode())
        assert wait_for(lambda: logged(tmp_path)) == [NOT_UTF8.hex()]
        assert wait_for(lambda: not list(queue.peek_messages())) and not list(poison.peek_messages())
    finally:
        host.stop()


def test_the_sales_trigger_is_bound_as_binary_so_a_frame_reaches_the_function():
    (sales,) = discover(load_app(DEFAULT_APP_DIR))[1]
    frame = base64.b64decode(encode_batch(make_batch("b-bind", [1]), "s" * 43))
    assert sales.data_type == "binary"
    assert bind_queue_body(frame, sales.data_type) == frame
    with pytest.raises(QueueBindingError, match="unable to translate bytes"):
        bind_queue_body(frame, "string")


def test_storage_that_cannot_be_reached_gives_a_503_json_answer_not_a_500(monkeypatch):
    import branchsync_cloud.http

    dead = free_port()
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + base64.b64encode(b"k" * 64).decode()
            + f";QueueEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;")
    monkeypatch.setenv("AzureWebJobsStorage", conn)
    monkeypatch.setenv("BRANCHSYNC_ADMIN_KEY", "k")
    monkeypatch.setattr(branchsync_cloud.http, "_service", None)  # built from this environment on first use
    monkeypatch.setattr(branchsync_cloud.http, "_settings", None)
    host = DevHost(port=free_port()).start()
    try:
        r = httpx.get(f"http://127.0.0.1:{host.server.config.port}/api/manage/branches",
                      headers={"X-Branchsync-Admin-Key": "k"}, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    finally:
        host.stop()


def test_an_unresolved_key_vault_reference_refuses_manage_requests_and_health_says_why(storage, monkeypatch):
    import branchsync_cloud.http

    literal = "@Microsoft.KeyVault(SecretUri=https://kv-abc123.vault.azure.net/secrets/branchsync-admin-key/)"
    monkeypatch.setenv("AzureWebJobsStorage", storage)
    monkeypatch.setenv("BRANCHSYNC_ADMIN_KEY", literal)  # what the app sees when the reference does not resolve
    monkeypatch.setattr(branchsync_cloud.http, "_service", None)  # built from this environment on first use
    monkeypatch.setattr(branchsync_cloud.http, "_settings", None)
    host = DevHost(port=free_port()).start()
    try:
        base = f"http://127.0.0.1:{host.server.config.port}/api"
        refused = httpx.get(f"{base}/manage/branches", headers={"X-Branchsync-Admin-Key": literal}, timeout=30)
        health = httpx.get(f"{base}/health", timeout=30)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        assert "Key Vault reference" in refused.json()["error"]["message"]
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and health.json()["admin_api"] == "unresolved_reference"
        assert "did not resolve" in health.json()["problem"]
    finally:
        host.stop()


SIZE_APP = '''
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="size", methods=["POST"])
def size(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(len(req.get_body())))
'''


def test_a_body_or_url_beyond_the_hosts_limits_is_refused_with_json_before_the_function_runs(tmp_path, monkeypatch):
    import headoffice.devhost as devhost

    monkeypatch.setattr(devhost, "MAX_REQUEST_BYTES", 1000)  # the real limit is Azure's 100 MB
    (tmp_path / "function_app.py").write_text(SIZE_APP)
    host = DevHost(tmp_path, port=free_port(), env={}).start()
    try:
        url = f"http://127.0.0.1:{host.server.config.port}/api/size"
        assert httpx.post(url, content=b"x" * 1000).text == "1000"
        big = httpx.post(url, content=b"x" * 1001)
        chunked = httpx.post(url, content=iter([b"x" * 600, b"x" * 600]))  # no Content-Length: counted as it streams
        long_url = httpx.post(url + "?q=" + "a" * devhost.MAX_URL_CHARS, content=b"")
        assert (big.status_code, chunked.status_code, long_url.status_code) == (413, 413, 414)
        assert big.json()["error"]["code"] == "oversized_message" and long_url.json()["error"]["code"] == "bad_request"
    finally:
        host.stop()
