"""Two branches on one cloud: neither can act as the other (dev host, Azurite, real SDK)."""

import time

import httpx
import pytest
from azure.core.credentials import AzureSasCredential
from azure.storage.queue import QueueClient

from shared.encoding import encode_batch
from shared.models import PullAnswer
from shared.signing import sign_request
from tests.builders import make_batch
from tests.devhost.test_devhost_monitoring import admin, enrolled

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def signed_get(cloud, claimed, secret, path="/api/pull", **query) -> httpx.Response:
    query = {k: str(v) for k, v in query.items()}
    headers = sign_request(secret, claimed, "GET", path, query, b"", time.time())
    return httpx.get(f"{cloud.url}{path}", params=query, headers=headers, timeout=10)


def pull(cloud, name, secret) -> PullAnswer:
    r = signed_get(cloud, name, secret, cursor=0)
    assert r.status_code == 200, r.text
    return PullAnswer.model_validate_json(r.content)


def push_with_sas(access, text: str) -> None:
    """Onto the sales queue exactly as a branch does: its pull's add-only SAS, the text already base64."""
    QueueClient.from_queue_url(access.queue_url, credential=AzureSasCredential(access.sas_token)).send_message(text)


def wait_until(check, timeout=30):
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return result


@pytest.fixture
def two(cloud, branch_name):
    a, b = branch_name + "-a", branch_name + "-b"
    return (a, enrolled(cloud, a)), (b, enrolled(cloud, b))


def test_a_branch_signing_a_request_as_another_is_refused(cloud, two):
    (a, secret_a), (b, _) = two
    r = signed_get(cloud, b, secret_a, cursor=0)
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature"


def test_a_branch_sees_only_its_own_applied_through_and_no_admin_data(cloud, two):
    (a, secret_a), (b, secret_b) = two
    push_with_sas(pull(cloud, a, secret_a).push, encode_batch(make_batch(a, [1]), secret_a))
    push_with_sas(pull(cloud, b, secret_b).push, encode_batch(make_batch(b, [1, 2, 3]), secret_b))
    assert wait_until(lambda: pull(cloud, b, secret_b).applied_through == 3)
    assert wait_until(lambda: pull(cloud, a, secret_a).applied_through == 1)
    answer = pull(cloud, a, secret_a)
    assert (answer.branch, answer.applied_through) == (a, 1)
    # A signed branch request is no admin request: B's sales stay out of A's reach.
    r = signed_get(cloud, a, secret_a, path="/api/manage/sales", branch=b)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_a_queue_message_framed_as_another_branch_is_dead_lettered_and_leaves_its_books_alone(cloud, two):
    (a, secret_a), (b, secret_b) = two
    push_with_sas(pull(cloud, b, secret_b).push, encode_batch(make_batch(b, [1]), secret_b))
    assert wait_until(lambda: pull(cloud, b, secret_b).applied_through == 1)

    forged = encode_batch(make_batch(b, [2, 3]), secret_a)  # framed as B, signed with A's secret
    push_with_sas(pull(cloud, a, secret_a).push, forged)

    def letters():
        listing = httpx.get(f"{cloud.url}/api/manage/deadletters", headers=admin(cloud), timeout=10).json()
        return [d for d in listing["dead_letters"] if d["branch"] == b]

    [letter] = wait_until(letters)
    assert letter["code"] == "bad_signature"
    assert pull(cloud, b, secret_b).applied_through == 1
    sales = httpx.get(f"{cloud.url}/api/manage/sales", params={"branch": b}, headers=admin(cloud), timeout=10).json()
    assert [s["sale"]["seq"] for s in sales["sales"]] == [1]
