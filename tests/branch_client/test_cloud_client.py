"""The cloud client, the branch's one I/O seam.

The HTTP side runs through `httpx.MockTransport` (the seam httpx provides); the queue side
through a queue-sender callable. Both stand in only for the network.
"""

import json
import secrets
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from pydantic import ValidationError

from branch_client.cloud_client import AzureQueueSender, CloudClient, PushWay, enroll
from branch_client.errors import BadEnrollmentCode, CloudBadAnswer, CloudRefused, CloudUnreachable
from branch_client.version import version
from shared.models import CatalogPage, PullAnswer, PushRoute, QueueAccess
from shared.signing import new_secret, verify_request
from tests.branch_client.fakes import BRANCH, product

ROOT = Path(__file__).resolve().parents[2]

ACCESS = QueueAccess(queue_url="https://acct.queue.core.windows.net/sales", sas_token="?se=x&sp=a&sig=y",
                     expires_at=datetime.now(timezone.utc) + timedelta(hours=1))


def _client(handler, **options) -> CloudClient:
    return CloudClient("https://cloud.example/", BRANCH, "k" * 43, transport=httpx.MockTransport(handler), backoff=0,
                       **options)


def _json_error(status, code, message):
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def test_a_pull_is_signed_so_the_cloud_can_verify_it(fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    answer = fake_cloud.client().pull(cursor=0, limit=10, pending=3)
    assert [e.sku for e in answer.catalog.entries] == ["SOAP"] and answer.branch == fake_cloud.branch
    # The backlog and the release ride along so head office sees each branch's lag and version.
    assert fake_cloud.pulls == [{"cursor": "0", "limit": "10", "pending": "3", "version": version(), "push": "queue,route"}]


def test_a_pull_signed_with_the_wrong_secret_is_refused_with_the_clouds_message(fake_cloud):
    client = CloudClient("https://cloud.example", fake_cloud.branch, new_secret(),
                         transport=httpx.MockTransport(fake_cloud.handler), backoff=0)
    with pytest.raises(CloudRefused) as exc:
        client.pull(0)
    assert exc.value.code == "bad_signature" and "re-enroll" in str(exc.value)


def test_a_4xx_error_body_surfaces_its_code_and_message():
    client = _client(lambda r: _json_error(401, "clock_skew", "branch clock is 400 s behind the cloud; set the clock"))
    with pytest.raises(CloudRefused, match="set the clock") as exc:
        client.pull(0)
    assert (exc.value.code, exc.value.status) == ("clock_skew", 401)


def test_an_answer_that_is_not_from_branchsync_says_to_check_the_url():
    with pytest.raises(CloudRefused, match="check the cloud URL") as exc:
        _client(lambda r: httpx.Response(404, text="<html>nope</html>")).pull(0)
    assert exc.value.code == "http_404"


def test_server_trouble_is_retried_and_a_later_success_is_used(fake_cloud):
    calls = []

    def flaky(request):
        calls.append(request.headers["X-Branchsync-Nonce"])
        if len(calls) < 3:
            return _json_error(503, "unavailable", "storage cannot be reached")
        return fake_cloud.handler(request)

    answer = CloudClient("https://cloud.example", fake_cloud.branch, fake_cloud.secret,
                         transport=httpx.MockTransport(flaky), backoff=0).pull(0)
    assert answer.applied_through == 0 and len(calls) == 3
    assert len(set(calls)) == 3  # each attempt is signed afresh


def test_a_cloud_that_stays_down_is_unreachable_after_a_few_attempts():
    calls = []

    def down(request):
        calls.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(CloudUnreachable, match="cannot reach the cloud at cloud.example.*sales stay pending"):
        _client(down, attempts=3).pull(0)
    assert len(calls) == 3


def test_a_cloud_that_keeps_answering_503_is_unreachable_and_says_why():
    with pytest.raises(CloudUnreachable, match="HTTP 503: storage cannot be reached"):
        _client(lambda r: _json_error(503, "unavailable", "storage cannot be reached")).pull(0)


def test_refusals_are_not_retried():
    calls = []

    def refuse(request):
        calls.append(1)
        return _json_error(403, "unknown_branch", "unknown branch")

    with pytest.raises(CloudRefused):
        _client(refuse).pull(0)
    assert len(calls) == 1


def test_an_answer_that_breaks_the_contract_is_a_bad_answer():
    with pytest.raises(CloudBadAnswer, match="does not understand"):
        _client(lambda r: httpx.Response(200, json={"branch": BRANCH})).pull(0)


def test_an_answer_for_another_branch_is_a_bad_answer():
    answer = PullAnswer(branch="khulna-2", applied_through=0, catalog=CatalogPage(entries=[], next_cursor=0, more=False),
                        server_time=datetime.now(timezone.utc), push=ACCESS)
    with pytest.raises(CloudBadAnswer, match="khulna-2"):
        _client(lambda r: httpx.Response(200, content=answer.model_dump_json())).pull(0)


def test_enroll_trades_the_token_for_the_branch_name_and_secret(fake_cloud):
    fake_cloud.enroll_tokens.add("t" * 24)
    answer = enroll("https://cloud.example", "t" * 24, transport=httpx.MockTransport(fake_cloud.handler))
    assert (answer.branch, answer.secret) == (fake_cloud.branch, fake_cloud.secret)
    with pytest.raises(CloudRefused) as exc:
        enroll("https://cloud.example", "t" * 24, transport=httpx.MockTransport(fake_cloud.handler))
    assert exc.value.code == "enrollment_invalid"


def test_an_enrollment_that_may_have_reached_the_cloud_is_not_sent_twice():
    calls = []

    def slow(request):
        calls.append(1)
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(CloudUnreachable, match="did not answer in time"):
        enroll("https://cloud.example", "t" * 24, transport=httpx.MockTransport(slow), backoff=0)
    assert len(calls) == 1


def test_a_malformed_enrollment_token_is_bad_input_before_any_call():
    with pytest.raises(BadEnrollmentCode):
        enroll("https://cloud.example", "short", transport=httpx.MockTransport(lambda r: pytest.fail("called")))


def test_send_puts_the_text_on_the_queue_unchanged_with_the_sas():
    sent = []
    client = _client(lambda r: pytest.fail("no HTTP"), queue_sender=lambda url, sas, text: sent.append((url, sas, text)))
    client.send(ACCESS, "QlNRMQ==")
    assert sent == [(ACCESS.queue_url, ACCESS.sas_token, "QlNRMQ==")]


def test_a_queue_connection_failure_is_retried_then_unreachable():
    calls = []

    def down(url, sas, text):
        calls.append(1)
        raise ServiceRequestError("connection refused")

    with pytest.raises(CloudUnreachable, match="sales queue"):
        _client(lambda r: None, queue_sender=down, attempts=2).send(ACCESS, "x")
    assert len(calls) == 2


def test_a_queue_refusal_is_not_retried_and_says_what_to_do():
    calls = []

    def forbidden(url, sas, text):
        calls.append(1)
        err = HttpResponseError(message="This request is not authorized")
        err.status_code = 403
        raise err

    with pytest.raises(CloudRefused, match="expired or the PC clock is off") as exc:
        _client(lambda r: None, queue_sender=forbidden).send(ACCESS, "x")
    assert exc.value.code == "queue_refused" and len(calls) == 1


# --- push: the queue or the cloud's push route ----------------------------------------------

ROUTE = PushRoute(path="/api/push", max_messages=16, max_body_bytes=1024 * 1024)
SECRET = "k" * 43


def _route_cloud(posts: list, cut_first: int = 0):
    """A push route that checks each request's signature, after `cut_first` connections cut."""
    def handler(request: httpx.Request) -> httpx.Response:
        if len(posts) < cut_first:
            posts.append(None)
            raise httpx.ReadError("connection cut", request=request)
        verify_request(SECRET, request.headers, "POST", request.url.path, {}, request.content, time.time())
        posts.append((request.url.path, request.headers["X-Branchsync-Nonce"], json.loads(request.content)))
        return httpx.Response(202, json={"accepted": len(json.loads(request.content)["messages"])})
    return handler


def test_a_push_without_a_sas_goes_to_the_push_route_signed_with_the_very_message():
    posts = []
    client = _client(_route_cloud(posts), queue_sender=lambda *a: pytest.fail("no queue without a SAS"))
    client.push(PushWay(queue=None, route=ROUTE), "QlNRMQ==")
    assert [(path, body) for path, _, body in posts] == [("/api/push", {"messages": ["QlNRMQ=="]})]


def test_a_push_goes_to_the_queue_when_it_takes_it_and_never_to_the_route():
    sent = []
    client = _client(lambda r: pytest.fail("no HTTP"), queue_sender=lambda url, sas, text: sent.append(text))
    client.push(PushWay(queue=ACCESS, route=ROUTE), "QlNRMQ==")
    assert sent == ["QlNRMQ=="] and client.queue_blocked is None


def test_a_queue_blocked_from_here_falls_back_to_the_route_for_the_rest_of_the_run():
    tried, posts = [], []

    def blocked(url, sas, text):  # a proxy that refuses the queue's host
        tried.append(text)
        raise ServiceRequestError("connection refused by proxy")

    client = _client(_route_cloud(posts), queue_sender=blocked, attempts=2)
    client.push(PushWay(queue=ACCESS, route=ROUTE), "first")
    client.push(PushWay(queue=ACCESS, route=ROUTE), "second")
    assert tried == ["first", "first"]  # the queue's own retries, then the route; not tried again
    assert [body["messages"] for _, _, body in posts] == [["first"], ["second"]]
    assert "sales queue" in client.queue_blocked


def test_a_queue_failure_without_a_route_on_offer_is_raised_as_before():
    def down(url, sas, text):
        raise ServiceRequestError("connection refused")

    with pytest.raises(CloudUnreachable, match="sales queue"):
        _client(lambda r: pytest.fail("no route on offer"), queue_sender=down, attempts=1).push(
            PushWay(queue=ACCESS, route=None), "x")


def test_a_cut_push_is_sent_again_signed_afresh():
    posts = []
    _client(_route_cloud(posts, cut_first=1)).push(PushWay(queue=None, route=ROUTE), "QlNRMQ==")
    assert posts[0] is None and posts[1][2] == {"messages": ["QlNRMQ=="]}


def test_a_refused_push_surfaces_the_clouds_code_and_message():
    client = _client(lambda r: _json_error(403, "forbidden", "message 1 of the push claims branch 'x'"))
    with pytest.raises(CloudRefused, match="claims branch") as exc:
        client.push(PushWay(queue=None, route=ROUTE), "QlNRMQ==")
    assert exc.value.code == "forbidden"


def test_a_pull_answer_from_a_route_mode_cloud_reads_and_one_naming_no_way_to_push_is_refused():
    base = {"branch": BRANCH, "applied_through": 0, "server_time": "2026-12-01T10:00:00Z",
            "catalog": {"entries": [], "next_cursor": 0, "more": False}}
    answer = PullAnswer.model_validate({**base, "push_route": ROUTE.model_dump()})
    assert PushWay.of(answer) == PushWay(queue=None, route=ROUTE) and PushWay.of(answer).expires_at.year == 9999
    with pytest.raises(ValidationError, match="a way to push"):
        PullAnswer.model_validate(base)


@pytest.mark.azurite
def test_a_backlogs_messages_reach_the_queue_over_one_kept_alive_connection(azurite):
    from azure.storage.queue import QueueClient, QueueSasPermissions, generate_queue_sas

    from bench.shaper import Link, Shaper
    from headoffice.stand_ins import DEV_ACCOUNT, DEV_KEY

    name = "keepalive-" + secrets.token_hex(4)
    QueueClient.from_connection_string(azurite.connection_string, name).create_queue()
    sas = generate_queue_sas(DEV_ACCOUNT, name, DEV_KEY, permission=QueueSasPermissions(add=True),
                             expiry=datetime.now(timezone.utc) + timedelta(minutes=10))
    shaper = Shaper(Link.loopback())  # a loopback proxy in front of Azurite that counts connections
    try:
        port = shaper.forward("127.0.0.1", azurite.queue_port)
        sender = AzureQueueSender()
        for i in range(5):
            sender(f"http://127.0.0.1:{port}/{DEV_ACCOUNT}/{name}", sas, f"bWVzc2FnZS0{i}")
        sender.close()
        assert shaper.link.connections == 1
    finally:
        shaper.close()
    got = QueueClient.from_connection_string(azurite.connection_string, name).receive_messages(max_messages=32)
    assert sorted(m.content for m in got) == [f"bWVzc2FnZS0{i}" for i in range(5)]


def test_warming_the_push_imports_the_queue_sdk_on_a_thread_of_its_own():
    # A fresh interpreter: in this one the SDK is long imported.
    script = """
import sys
from branch_client.cloud_client import CloudClient
client = CloudClient("https://cloud.example")
assert "azure.storage.queue" not in sys.modules, "imported before it was warmed"
thread = client.warm_push()
assert thread.name == "queue-sdk"
thread.join(60)
print("azure.storage.queue" in sys.modules, "azure.core.credentials" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_a_client_with_a_queue_sender_of_its_own_has_nothing_to_warm():
    assert CloudClient("https://cloud.example", queue_sender=lambda url, sas, text: None).warm_push() is None
