"""Fixtures for the cloud core against the session's Azurite: each test gets its own tables."""

import uuid
from datetime import datetime, timezone

import pytest

from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore

ADMIN_KEY = "cloud-test-admin-key"


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
def store(storage, table_prefix) -> TableStore:
    return TableStore(storage, table_prefix)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store, storage, clock) -> Service:
    settings = Settings(storage=storage, admin_key=ADMIN_KEY, public_url="https://cloud.example", table_prefix=store._prefix)
    return Service(store, settings, clock)
