"""End to end over HTTPS: the branch console script enrolls, sells and syncs against the dev host
serving TLS with a certificate from a test CA that the OS trusts (SSL_CERT_FILE on Linux, the
machine's Root store on the Windows runner; see tests/branch_client/tls.py), and refuses to
talk to it when the OS does not trust that CA.
"""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.branch_client.tls import Pki, make_pki, start_https_cloud, stop_https_cloud
from tests.conftest import ADMIN_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

IN_OS_STORE = os.environ.get("BRANCHSYNC_TEST_PKI")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    if IN_OS_STORE:
        folder = Path(IN_OS_STORE)
        return Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def https_cloud(azurite, pki, tmp_path_factory):
    proc, url = start_https_cloud(tmp_path_factory.mktemp("https-cloud"), azurite.connection_string, ADMIN_KEY, pki)
    yield url
    stop_https_cloud(proc)


@pytest.fixture
def https_env(https_cloud, pki) -> dict:
    """The environment of a PC whose OS trusts the test CA."""
    env = {k: v for k, v in os.environ.items() if k not in ("BRANCHSYNC_HOME", "SSL_CERT_DIR")}
    env.update(BRANCHSYNC_ADMIN_KEY=ADMIN_KEY, BRANCHSYNC_URL=https_cloud, PYTHONIOENCODING="utf-8")
    if not IN_OS_STORE:
        env["SSL_CERT_FILE"] = str(pki.ca_file)
    return env


@pytest.fixture
def admin_https_env(https_env, pki) -> dict:
    """Head office's tool uses httpx's own trust (certifi, or SSL_CERT_FILE): give it the CA explicitly."""
    return {**https_env, "SSL_CERT_FILE": str(pki.ca_file)}


def admin(*args, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "headoffice.admin_cli", *map(str, args)], env=env, text=True,
                          encoding="utf-8", capture_output=True, timeout=120)
    assert proc.returncode == 0, f"admin {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def branch_program() -> list[str]:
    return [sys.executable, "-m", "branch_client"]


def https_round_trip(program: list[str], env: dict, admin_env: dict, tmp_path: Path, branch_name: str) -> None:
    """Enroll, sell, sync until acknowledged, over HTTPS (shared with the executable's smoke test)."""
    def run(*args, check=True):
        proc = subprocess.run([*program, *map(str, args)], env=env, text=True, encoding="utf-8",
                              capture_output=True, timeout=120)
        assert not check or proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    sku = f"TLS-{branch_name}"
    catalog = tmp_path / "catalog.csv"
    with open(catalog, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["sku", "name", "price", "unit"], [sku, "চিনি", "120.00", "kg"]])
    admin("catalog", "import", catalog, env=admin_env)
    code = admin("branch", "add", branch_name, env=admin_env).strip()
    home = tmp_path / "till"
    assert branch_name in run("--home", home, "enroll", code).stdout
    run("--home", home, "sync")
    run("--home", home, "sale", "add", f"{sku}=1")
    assert "pushed 1 sales" in run("--home", home, "sync").stdout
    deadline = time.monotonic() + 60
    while True:
        run("--home", home, "sync")
        info = json.loads(run("--home", home, "status", "--json").stdout)
        if info["applied_through"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert info["applied_through"] == 1 and info["pending"] == 0 and info["last_error"] is None
    assert info["cloud_url"].startswith("https://")


def test_a_branch_enrolls_sells_and_syncs_over_https_with_a_ca_the_os_trusts(https_env, admin_https_env, tmp_path,
                                                                             branch_name):
    https_round_trip(branch_program(), https_env, admin_https_env, tmp_path, branch_name)


@pytest.mark.skipif(bool(IN_OS_STORE), reason="the CA is in the runner's Root store for the whole job")
def test_a_branch_refuses_the_cloud_when_the_os_does_not_trust_its_ca(https_env, admin_https_env, tmp_path,
                                                                      branch_name):
    code = admin("branch", "add", branch_name, env=admin_https_env).strip()
    env = {**https_env, "SSL_CERT_FILE": str(make_pki(tmp_path / "other", "another CA").ca_file)}
    proc = subprocess.run([*branch_program(), "--home", str(tmp_path / "till"), "enroll", code], env=env, text=True,
                          encoding="utf-8", capture_output=True, timeout=120)
    assert proc.returncode == 1
    assert "certificate this PC does not trust" in proc.stderr and "Traceback" not in proc.stderr
