"""Fixtures for the cloud core: the service over a MemoryStore, TableStore on Azurite for its own tests.

A test marked `azurite` gets the session's Azurite as the service's storage account too
(for its queues); every other one gets an account that nothing listens on, so a test that
reached for a queue unawares would fail rather than pass by luck.
"""

import uuid
from datetime import datetime, timezone

import pytest

from branchsync_cloud.memory_store import MemoryStore
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore
from headoffice.stand_ins import DEV_ACCOUNT, DEV_KEY

ADMIN_KEY = "cloud-test-admin-key"
# Azurite's development account on a port nothing listens on (port 9, discard): queue SAS
# tokens can be signed with its key, and any queue request fails.
OFFLINE_STORAGE = (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
                   f"QueueEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT};TableEndpoint=http://127.0.0.1:9/{DEV_ACCOUNT};")


class Clock:
    """A settable clock, so expiry and skew are tested without sleeping."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def table_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def table_store(storage, table_prefix) -> TableStore:
    return TableStore(storage, table_prefix)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(request, store, table_prefix, clock) -> Service:
    storage = request.getfixturevalue("storage") if request.node.get_closest_marker("azurite") else OFFLINE_STORAGE
    settings = Settings(storage=storage, admin_key=ADMIN_KEY, public_url="https://cloud.example", table_prefix=table_prefix)
    return Service(store, settings, clock)
