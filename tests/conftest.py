"""Fixtures that start the real local stand-ins: Azurite and the cloud dev host."""

import os
import uuid
from pathlib import Path

import pytest

from headoffice.stand_ins import start_azurite, start_cloud

ADMIN_KEY = "test-admin-key-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """One in-memory Azurite for the whole run; tests keep apart by using their own branch names."""
    az = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield az
    az.stop()


@pytest.fixture(scope="session")
def storage(azurite) -> str:
    """The AzureWebJobsStorage connection string of the session's Azurite."""
    return azurite.connection_string


@pytest.fixture(scope="session")
def cloud(azurite, tmp_path_factory):
    """The dev host serving function_app/ on a loopback port, against the session's Azurite."""
    c = start_cloud(tmp_path_factory.mktemp("cloud"), azurite.connection_string, ADMIN_KEY)
    yield c
    c.stop()


@pytest.fixture
def admin_env(cloud) -> dict:
    return {**os.environ, "BRANCHSYNC_ADMIN_KEY": ADMIN_KEY}


@pytest.fixture
def branch_name() -> str:
    """A branch name no other test uses, so tests share one Azurite safely."""
    return "b-" + uuid.uuid4().hex[:10]


# Debian's chromium for the till's browser tests (Playwright cannot download its own browsers
# here), with the flags that let it start as root with no network beyond loopback.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the run (Playwright's sync API allows one instance per thread)."""
    from playwright.sync_api import expect, sync_playwright

    # The page answers in milliseconds, but these machines are shared: a waiting assertion
    # allows 15 s (Playwright's default is 5 s) so a busy core does not fail a right page.
    expect.set_options(timeout=15_000)
    assert Path(CHROMIUM).exists(), "chromium is missing: run 'make browser-deps' (apt-get install chromium fonts-beng-extra)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
