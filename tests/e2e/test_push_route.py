"""The push route through real processes: a route-mode cloud, and a queue a proxy blocks.

The branch CLI, the dev host and Azurite all run for real. In the second test a NetCut
proxy in front of Azurite's queue port drops every request signed with a SAS (what the
branch sends) and lets the cloud's own, key-signed requests through, as a shop's proxy that
blocks the queue host would.
"""

import json
import sys
import time
from pathlib import Path

import pytest

from branch_client.cloud_client import CloudClient
from branch_client.store import Store
from headoffice.stand_ins import start_cloud
from tests.faults.netcut import Cut, NetCut
from tests.processes import cli

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
BIN = Path(sys.executable).parent



def till_with_sales(tmp_path, env, branch_name, n) -> Path:
    sku = f"TEA-{branch_name}"
    (tmp_path / "c.csv").write_text(f"sku,name,price\n{sku},চা Tea,55.00\n", encoding="utf-8")
    cli("branchsync-admin", "catalog", "import", tmp_path / "c.csv", env=env)
    home = tmp_path / "till"
    cli("branchsync", "--home", home, "enroll", cli("branchsync-admin", "branch", "add", branch_name, env=env).strip(), env=env)
    cli("branchsync", "--home", home, "sync", env=env)
    for i in range(n):
        cli("branchsync", "--home", home, "sale", "add", f"{sku}={1 + i % 3}", env=env)
    return home


def applied(env, branch_name) -> dict:
    return next(b for b in json.loads(cli("branchsync-admin", "branches", "--json", env=env))["branches"]
                if b["branch"] == branch_name)


def wait_applied(env, branch_name, through, timeout=60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done = applied(env, branch_name)["applied_through"]
        if done >= through or time.monotonic() > deadline:
            return done
        time.sleep(0.3)


def test_a_route_mode_cloud_hands_out_no_sas_and_a_branch_s_sales_arrive_through_the_route(tmp_path, azurite, admin_env,
                                                                                           branch_name):
    key = admin_env["BRANCHSYNC_ADMIN_KEY"]
    cloud = start_cloud(tmp_path / "cloud", azurite.connection_string, key, extra_env={"BRANCHSYNC_PUSH_MODE": "route"})
    try:
        env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
        home = till_with_sales(tmp_path, env, branch_name, 5)
        cli("branchsync", "--home", home, "sync", env=env)
        with Store(home) as store:
            identity = store.identity()
        with CloudClient.for_identity(identity) as client:
            answer = client.pull(0, limit=1)
        assert answer.push is None and answer.push_route.path == "/api/push"  # no way but the route
        assert wait_applied(env, branch_name, 5) == 5
        cli("branchsync", "--home", home, "sync", env=env)
        assert json.loads(cli("branchsync", "--home", home, "status", "--json", env=env))["pending"] == 0
        assert "push route branch=" + branch_name in cloud.log.read_text()
    finally:
        cloud.stop()


def test_a_branch_whose_proxy_blocks_the_queue_host_pushes_through_the_route_instead(tmp_path, azurite, admin_env,
                                                                                   branch_name):
    key = admin_env["BRANCHSYNC_ADMIN_KEY"]
    proxy = NetCut(azurite.queue_port)
    blocked = proxy.add(Cut(match=lambda method, path: "sig=" in path, times=10**9))  # SAS requests only
    storage = azurite.connection_string.replace(f"QueueEndpoint=http://127.0.0.1:{azurite.queue_port}/",
                                                f"QueueEndpoint={proxy.url}/")
    cloud = start_cloud(tmp_path / "cloud", storage, key)  # queue mode: it hands out a SAS
    try:
        env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
        home = till_with_sales(tmp_path, env, branch_name, 4)
        cli("branchsync", "--home", home, "sync", env=env)
        assert blocked.fired > 0  # the branch did try the queue first
        assert wait_applied(env, branch_name, 4) == 4
        cli("branchsync", "--home", home, "sync", env=env)
        status = json.loads(cli("branchsync", "--home", home, "status", "--json", env=env))
        assert status["pending"] == 0 and applied(env, branch_name)["sales_applied"] == 4
    finally:
        cloud.stop()
        proxy.stop()
