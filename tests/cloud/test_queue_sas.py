"""The push SAS a branch gets from a pull, tried against a real Azurite with the real SDK.

This file starts an Azurite of its own: the messages it adds must not reach the dev host
that other tests run against the session's Azurite.
"""

from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.queue import QueueClient, QueueServiceClient

from branchsync_cloud.queue_access import SALES_QUEUE
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore
from headoffice.stand_ins import start_azurite
from tests.cloud.conftest import ADMIN_KEY, Clock
from tests.cloud.test_service import enroll, pull

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def own_storage(tmp_path_factory):
    az = start_azurite(tmp_path_factory.mktemp("sas-azurite"))
    conn = az.connection_string
    owner = QueueServiceClient.from_connection_string(conn)
    for name in (SALES_QUEUE, SALES_QUEUE + "-poison"):
        owner.create_queue(name)
    yield conn
    az.stop()


@pytest.fixture
def access(own_storage):
    """The push access of a freshly enrolled branch, and the clock that issued it."""
    clock = Clock()
    settings = Settings(storage=own_storage, admin_key=ADMIN_KEY, public_url="https://cloud.example", table_prefix="sas")
    service = Service(TableStore(own_storage, "sas"), settings, clock)
    name = "sas-" + str(id(clock))[-6:]
    secret = enroll(service, name)
    return pull(service, name, secret, clock, cursor=0).push, clock, service, name, secret


def refused(call) -> int:
    with pytest.raises(HttpResponseError) as err:
        call()
    return err.value.status_code


def test_the_push_sas_can_add_to_the_sales_queue(access, own_storage):
    push, *_ = access
    QueueClient.from_queue_url(push.queue_url, credential=push.sas_token).send_message("aGVsbG8=")
    owner = QueueClient.from_connection_string(own_storage, SALES_QUEUE)
    assert "aGVsbG8=" in [m.content for m in owner.peek_messages(max_messages=32)]


def test_the_push_sas_cannot_read_change_or_remove_anything_in_the_sales_queue(access, own_storage):
    push, *_ = access
    queue = QueueClient.from_queue_url(push.queue_url, credential=push.sas_token)
    owner = QueueClient.from_connection_string(own_storage, SALES_QUEUE)
    owner.send_message("b3duZXI=")
    held = owner.receive_message(visibility_timeout=1)  # a real id and pop receipt to try with
    for call in (
        lambda: list(queue.receive_messages()),
        lambda: queue.peek_messages(),
        lambda: queue.delete_message(held.id, held.pop_receipt),
        lambda: queue.update_message(held.id, held.pop_receipt, visibility_timeout=0, content="eA=="),
        lambda: queue.clear_messages(),
        lambda: queue.get_queue_properties(),
        lambda: queue.set_queue_metadata({"x": "y"}),
        lambda: queue.delete_queue(),
    ):
        assert refused(call) == 403


def test_the_push_sas_reaches_no_other_queue_and_cannot_list_queues(access):
    push, *_ = access
    account_url = push.queue_url.rsplit("/", 1)[0]
    poison = QueueClient.from_queue_url(f"{account_url}/{SALES_QUEUE}-poison", credential=push.sas_token)
    assert refused(lambda: poison.send_message("eA==")) == 403
    assert refused(lambda: QueueClient.from_queue_url(f"{account_url}/other", credential=push.sas_token).create_queue()) == 403
    assert refused(lambda: list(QueueServiceClient(account_url, credential=push.sas_token).list_queues())) == 403


def test_the_push_sas_expires_within_the_hour_and_is_refused_once_expired(access):
    push, clock, service, *_ = access
    expiry = parse_qs(push.sas_token)["se"][0]
    assert push.expires_at <= clock.now + timedelta(hours=1)
    assert expiry.startswith(f"{push.expires_at:%Y-%m-%dT%H:%M}")
    # The same signer a pull uses, for a pull an hour and a minute ago: that SAS no longer adds.
    stale = service.signer.access(clock.now - timedelta(hours=1, minutes=1))
    assert refused(lambda: QueueClient.from_queue_url(stale.queue_url, credential=stale.sas_token).send_message("eA==")) == 403


def test_the_push_sas_names_the_public_queue_url_when_one_is_set(own_storage):
    settings = Settings.from_env({"AzureWebJobsStorage": own_storage,
                                  "BRANCHSYNC_QUEUE_PUBLIC_URL": "http://127.0.0.1:9999/devstoreaccount1/"})
    clock = Clock()
    service = Service(TableStore(own_storage, "sas"), settings, clock)
    name = "sas-public-" + str(id(clock))[-6:]
    push = pull(service, name, enroll(service, name), clock, cursor=0).push
    assert push.queue_url == f"http://127.0.0.1:9999/devstoreaccount1/{SALES_QUEUE}"
