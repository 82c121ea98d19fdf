"""End to end: no secret shows up in anything a person, a log or a support bundle can read.

A real flow against the dev host and Azurite: enroll, sync, sell, push, a refused request,
a dead letter, then every command that reports (status, status --json, doctor, doctor
--json, support-bundle) and every log. The branch secret, the admin key, the storage
account key and the value of any SAS `sig=` must appear in none of it.
"""

import base64
import json
import re
import time
import zipfile
from urllib.parse import quote

import httpx
import pytest
from azure.storage.queue import QueueClient

from headoffice.stand_ins import DEV_KEY
from shared.signing import sign_request
from tests.e2e.test_console_scripts import cli, enrolled_branch, write_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
# A SAS signature is base64 (percent-encoded in a URL); a masked one reads `sig=***`.
SAS_SIG = re.compile(r"sig=(?!\*\*\*)[A-Za-z0-9%+/=]{8,}")


def test_no_secret_appears_in_output_logs_error_bodies_or_the_support_bundle(tmp_path, admin_env, cloud, storage, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    admin_key = env["BRANCHSYNC_ADMIN_KEY"]
    seen: dict[str, str] = {}  # where -> everything read there

    def run(*args, check=True, **extra_env):
        proc = cli(*args, env={**env, **extra_env}, check=check)
        where = " ".join(map(str, args))
        seen[where] = seen.get(where, "") + proc.stdout + proc.stderr
        return proc

    sku = f"TEA-{branch_name}"
    run("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "চা", "80", "pcs")]))
    home = enrolled_branch(tmp_path, branch_name, env)
    secret = (home / "secret").read_text().strip()
    run("branchsync", "--home", home, "sync")
    run("branchsync", "--home", home, "sale", "add", f"{sku}=2", "--payment", "cash")
    run("branchsync", "--home", home, "sync")

    # The push SAS the cloud hands out right now: its sig must not be copied anywhere either.
    query = {"cursor": "0"}
    pulled = httpx.get(f"{cloud.url}/api/pull", params=query, timeout=10,
                       headers=sign_request(secret, branch_name, "GET", "/api/pull", query, b"", time.time())).json()
    sas_sig = dict(p.split("=", 1) for p in pulled["push"]["sas_token"].split("&"))["sig"]

    # Refused requests: a forged pull, a wrong admin key, a sync with a corrupted secret.
    forged = sign_request(secret[::-1], branch_name, "GET", "/api/pull", {}, b"", time.time())
    seen["forged pull"] = httpx.get(f"{cloud.url}/api/pull", headers=forged, timeout=10).text
    seen["wrong admin key"] = httpx.get(f"{cloud.url}/api/manage/branches", timeout=10,
                                        headers={"X-Branchsync-Admin-Key": admin_key[::-1]}).text
    run("branchsync-admin", "branches", check=False, BRANCHSYNC_ADMIN_KEY=admin_key[:-1] + "x")
    (home / "secret").write_text(secret[::-1])
    run("branchsync", "--home", home, "sync", check=False)
    run("branchsync", "--home", home, "doctor", check=False)
    (home / "secret").write_text(secret)

    # A dead letter: a message that names this branch but is signed with nothing it knows.
    junk = b"BSQ1" + bytes([len(branch_name)]) + branch_name.encode() + b"\0" * 32 + b"not zlib"
    QueueClient.from_connection_string(storage, "sales").send_message(base64.b64encode(junk).decode())
    deadline = time.monotonic() + 60
    while True:
        letters = json.loads(run("branchsync-admin", "deadletter", "list", "--json").stdout)["dead_letters"]
        mine = [d for d in letters if d["branch"] == branch_name]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert mine, "the forged message was not dead-lettered"
    run("branchsync-admin", "deadletter", "show", mine[0]["id"])
    run("branchsync-admin", "branches")

    run("branchsync", "--home", home, "status")
    run("branchsync", "--home", home, "status", "--json")
    run("branchsync", "--home", home, "doctor", check=False)
    run("branchsync", "--home", home, "doctor", "--json", check=False)
    bundle = tmp_path / "bundle.zip"
    run("branchsync", "--home", home, "support-bundle", "--output", bundle)
    with zipfile.ZipFile(bundle) as z:
        for name in z.namelist():
            seen[f"bundle:{name}"] = z.read(name).decode("utf-8", "replace")
    for path in (home / "logs").glob("*"):
        seen[f"log:{path.name}"] = path.read_text("utf-8", "replace")
    seen["cloud log"] = cloud.log.read_text("utf-8", "replace")
    assert any(branch_name in text for where, text in seen.items() if where.startswith("log:"))
    assert "bundle:status.json" in seen and "cloud log" in seen

    secrets = {"branch secret": secret, "admin key": admin_key, "storage account key": DEV_KEY,
               "storage account key (URL-encoded)": quote(DEV_KEY, safe=""), "SAS sig": sas_sig,
               "SAS sig (decoded)": httpx.QueryParams(f"sig={sas_sig}")["sig"]}
    leaks = [(what, where) for where, text in seen.items() for what, value in secrets.items() if value in text]
    leaks += [("a SAS sig=", where) for where, text in seen.items() if SAS_SIG.search(text)]
    assert not leaks, leaks
