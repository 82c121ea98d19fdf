"""The branch verifies the cloud's HTTPS certificate against the operating system's trust store.

A real HTTPS server on loopback (tests/branch_client/tls.py) with a certificate from a test
CA made here. The CA is added the way the OS would: on Linux through OpenSSL's default
verify file, SSL_CERT_FILE, which truststore reads; on the Windows CI runner it is put in
the machine's Root certificate store with certutil beforehand and named by
BRANCHSYNC_TEST_PKI (see .github/workflows/branch-exe.yml), where certifi would refuse it.
Behind the server is FakeCloud, the real Functions app over a MemoryStore; the TLS handshake and the HTTP are real.
"""

import os
import ssl
from pathlib import Path

import pytest

from branch_client import cloud_client

from branch_client.cloud_client import CloudClient, tls_context
from branch_client.errors import CloudUnreachable
from branch_client.store import Store
from branch_client.sync import SyncEngine

from .fakes import FakeCloud, product
from .tls import HttpsServer, Pki, make_pki

IN_OS_STORE = os.environ.get("BRANCHSYNC_TEST_PKI")  # a CA already in the OS store (Windows CI)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if IN_OS_STORE:
        folder = Path(IN_OS_STORE)
        return Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def cloud(pki):
    fake = FakeCloud()
    fake.put(product("DAL-1", 14050, name="মসুর ডাল"))
    with HttpsServer(pki, fake.handler) as server:
        fake.url = server.url
        yield fake


@pytest.fixture
def ca_trusted_by_the_os(pki, monkeypatch):
    if IN_OS_STORE:
        return
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def test_the_client_trusts_what_the_operating_system_trusts():
    context = tls_context()
    assert type(context).__module__.startswith("truststore")


def test_a_signed_pull_succeeds_over_https_with_a_certificate_from_a_ca_the_os_trusts(cloud, ca_trusted_by_the_os):
    with CloudClient(cloud.url, cloud.branch, cloud.secret, attempts=1) as client:
        answer = client.pull(0)
    assert [e.sku for e in answer.catalog.entries] == ["DAL-1"] and answer.branch == cloud.branch
    assert len(cloud.pulls) == 1  # the signature was checked on the server side


def test_a_whole_sync_runs_over_https(cloud, ca_trusted_by_the_os, tmp_path):
    from branch_client.identity import Identity
    from branch_client.sale_entry import parse_items

    with Store(tmp_path / "till") as store:
        store.save_identity(Identity(cloud.branch, cloud.url, cloud.secret))
        with CloudClient(cloud.url, cloud.branch, cloud.secret, attempts=1,
                         queue_sender=lambda url, sas, text: cloud.messages.append(text)) as client:
            SyncEngine(store, client).run()
            store.record_sale(parse_items(["DAL-1=2"]), "cash")
            report = SyncEngine(store, client).run()
    assert report.pushed == 1 and len(cloud.messages) == 1


def test_the_client_takes_its_trust_from_the_os_trust_context_not_from_httpx_defaults(cloud, ca_trusted_by_the_os,
                                                                                     monkeypatch):
    # A context that trusts nothing: if the client used httpx's own defaults (certifi, or
    # SSL_CERT_FILE read by httpx), the pull would still succeed.
    monkeypatch.setattr(cloud_client, "tls_context", lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    with CloudClient(cloud.url, cloud.branch, cloud.secret, attempts=1) as client:
        with pytest.raises(CloudUnreachable, match="does not trust"):
            client.pull(0)


@pytest.mark.skipif(bool(IN_OS_STORE), reason="the OS store is not ours to change on the CI runner")
def test_a_certificate_from_a_ca_the_os_does_not_trust_fails_with_a_message_that_says_so(cloud, monkeypatch,
                                                                                             tmp_path):
    monkeypatch.setenv("SSL_CERT_FILE", str(make_pki(tmp_path / "other", "some other CA").ca_file))
    with CloudClient(cloud.url, cloud.branch, cloud.secret, attempts=3, backoff=0) as client:
        with pytest.raises(CloudUnreachable) as caught:
            client.pull(0)
    message = str(caught.value)
    assert "certificate this PC does not trust" in message and "Windows certificate store" in message
    assert "sales stay pending" in message
    assert cloud.pulls == []
