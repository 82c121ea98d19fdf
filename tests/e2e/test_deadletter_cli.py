"""`branchsync-admin deadletter` against the dev host: list, show, replay, discard."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from shared.encoding import encode_batch
from shared.signing import new_secret
from tests.builders import make_batch

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
BIN = Path(sys.executable).parent


def admin(*args, env, code=0) -> str:
    proc = subprocess.run([str(BIN / "branchsync-admin"), *args], env=env, text=True, capture_output=True, timeout=60)
    assert proc.returncode == code, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_ops_can_list_show_replay_and_discard_dead_letters(admin_env, cloud, storage, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    QueueClient.from_connection_string(storage, "sales").send_message(
        encode_batch(make_batch(branch_name, [1, 2]), new_secret()))  # a branch the cloud does not know

    deadline = time.monotonic() + 30
    mine = []
    while not mine and time.monotonic() < deadline:
        mine = [d for d in json.loads(admin("deadletter", "list", "--json", env=env))["dead_letters"]
                if d["branch"] == branch_name]
        time.sleep(0.3)
    [letter] = mine
    assert letter["code"] == "unknown_branch"
    assert branch_name in admin("deadletter", "list", env=env)

    shown = json.loads(admin("deadletter", "show", letter["id"], env=env))
    assert "seq 1-2" in shown["summary"] and shown["info"]["id"] == letter["id"]

    refused = admin("deadletter", "replay", letter["id"], env=env, code=1)
    assert "still refused" in refused and "kept" in refused

    assert "discarded" in admin("deadletter", "discard", letter["id"], env=env)
    assert "no dead letter" in admin("deadletter", "show", letter["id"], env=env, code=1)
