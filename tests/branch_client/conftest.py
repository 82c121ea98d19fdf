"""Fixtures for the branch tests: real SQLite stores in tmp_path, and the real cloud in memory at the seam.

`fake_cloud` (see tests/branch_client/fakes.py) is the real Functions app over a MemoryStore,
reached through the branch's one I/O seam with only the network and the queue's transport
stood in; the store is always a real SQLite file.
"""

import socket

import httpx
import pytest

from branch_client import cli
from branch_client.identity import Identity
from branch_client.store import Store
from tests.branch_client.fakes import FakeCloud, entry, page, product


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def enroll_out_of_reach(home, monkeypatch, secret: str = "k" * 43) -> None:
    """Enroll `home` with a cloud on a loopback port nobody listens on, and retry without waiting."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Store(home) as store:
        store.save_identity(Identity("dhaka-1", f"http://127.0.0.1:{port}", secret))
    monkeypatch.setattr(cli, "client_options", {"backoff": 0})


@pytest.fixture
def plugged(monkeypatch, fake_cloud):
    """Route the CLI's cloud client to the in-memory cloud (HTTP transport and queue sender)."""
    monkeypatch.setattr(cli, "client_options", {"transport": httpx.MockTransport(fake_cloud.handler),
                                                "queue_sender": fake_cloud.send, "backoff": 0})
    return fake_cloud


@pytest.fixture
def store(home):
    with Store(home) as s:
        yield s


@pytest.fixture
def fake_cloud() -> FakeCloud:
    return FakeCloud()


@pytest.fixture
def enrolled(store, fake_cloud) -> Store:
    store.save_identity(fake_cloud.identity())
    return store


@pytest.fixture
def stocked(store) -> Store:
    """A store with a small catalog, including Bangla names and an inactive product."""
    store.apply_catalog_page(page(
        entry(1, product("RICE-5KG", 42000, "চাল ৫ কেজি", barcode="8901234567890", unit="bag")),
        entry(2, product("DAL-1KG", 14050, "মসুর ডাল ১ কেজি", unit="kg")),
        entry(3, product("SOAP", 4500, "Lux Soap Bar", barcode="5000001")),
        entry(4, product("OLD-TEA", 9000, "Old Tea", active=False)),
    ), applied_through=0)
    return store
