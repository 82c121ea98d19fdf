"""A real till server on a loopback port over a real SQLite store, in a thread of the test.

The server is the one `branchsync till` runs (create_app + uvicorn on a socket bound to
127.0.0.1); only the browser launch is left out. `sync` is whatever the test passes.
"""

import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from branch_client.store import Store
from branch_client.till import server
from tests.branch_client.fakes import entry, product
from tests.branch_client.fakes import page as catalog_page

CATALOG = (
    product("RICE-5KG", 42000, "চাল ৫ কেজি", barcode="8901234567890", unit="bag"),
    product("DAL-1KG", 14050, "মসুর ডাল ১ কেজি", barcode="8901234567891", unit="pcs"),
    product("ATTA", 6500, "আটা (খোলা)", barcode="2000000000015", unit="kg"),
    product("SOAP", 4500, "Lux Soap Bar", barcode="5000001"),
    product("TEA-400", 21000, "চা পাতা ৪০০ গ্রাম", barcode="8941000000400"),
    # Sold from the scale: its labels are 20 12345 <grams> <check> (the default scale-label rule).
    product("FISH-RUI", 55000, "রুই মাছ", barcode="2012345000001", unit="kg"),
)
# A scale label for 1.250 kg of FISH-RUI: ৳687.50.
FISH_LABEL = "2012345012509"


@dataclass
class Till:
    url: str
    port: int
    token: str
    store: Store
    home: Path
    sync: server.BackgroundSync

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kw)

    def headers(self) -> dict:
        return {"X-Till-Token": self.token}


def start_till(home: Path, run_sync=None, clock=None):
    """`clock`: what the till takes for now (the PIN lock's time), else the real time."""
    store = Store(home)
    token = secrets.token_urlsafe(32)
    sock = server.bind(0)
    port = sock.getsockname()[1]
    sync = server.BackgroundSync(run_sync or (lambda: "sync done"))
    app = server.create_app(store, port=port, token=token, sync=sync, **({"clock": clock} if clock else {}))
    uv = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    till = Till(f"http://127.0.0.1:{port}", port, token, store, home, sync)

    def stop():
        uv.should_exit = True
        thread.join(10)
        sync.close()
        sync.wait(10)
        store.close()
        sock.close()
    return till, stop


@pytest.fixture
def stocked_home(tmp_path) -> Path:
    home = tmp_path / "home"
    with Store(home) as store:
        store.apply_catalog_page(catalog_page(*(entry(i + 1, p) for i, p in enumerate(CATALOG))), applied_through=0)
    return home


@pytest.fixture
def till(stocked_home):
    t, stop = start_till(stocked_home)
    yield t
    stop()


# The `browser` fixture (Debian's chromium through Playwright) is in tests/conftest.py: one
# Playwright per test run, shared with the end-to-end till test.


@pytest.fixture
def page(browser, till):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Asia/Dhaka")
    p = context.new_page()
    p.goto(till.url + "/")
    p.wait_for_function("document.getElementById('branch') !== null")
    yield p
    context.close()
