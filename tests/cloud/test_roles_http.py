"""Roles over the real dev host and its own Azurite: a reports credential changes nothing, every
refusal names the role needed, revoked and wrong credentials are refused, and the audit says who did what."""

import base64
import json
from datetime import datetime, timezone

import httpx
import pytest
from azure.data.tables import TableServiceClient

from branchsync_cloud.roles import ROUTE_ROLES
from branchsync_cloud.store import DeadLetter
from branchsync_cloud.table_store import AUDIT, TableStore
from headoffice.stand_ins import start_azurite, start_cloud
from shared.access import Role
from shared.enrollment import decode_code
from tests.cloud.test_roles import registered_manage_routes

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

ADMIN_KEY = "roles-test-admin-key-0123456789"
PREFIX = "roles"
BRANCH, SKU = "dhaka-roles", "RICE-ROLES"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Azurite and a dev host of this module's own, so a snapshot of its tables sees only what it does."""
    workdir = tmp_path_factory.mktemp("roles")
    azurite = start_azurite(workdir / "azurite")
    cloud = start_cloud(workdir / "cloud", azurite.connection_string, ADMIN_KEY,
                        extra_env={"BRANCHSYNC_TABLE_PREFIX": PREFIX})
    yield cloud, azurite.connection_string
    cloud.stop()
    azurite.stop()


def call(host, method, path, key, body=None) -> httpx.Response:
    cloud, _ = host
    return httpx.request(method, f"{cloud.url}/api/{path}", json=body, headers={"X-Branchsync-Admin-Key": key}, timeout=30)


def ok(resp: httpx.Response) -> dict:
    assert resp.status_code < 300, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def world(host):
    """An enrolled branch, a product, a dead letter, and two people: a reader and a catalog keeper."""
    _, conn = host
    code = decode_code(ok(call(host, "POST", "manage/branches", ADMIN_KEY, {"name": BRANCH}))["enrollment_code"])
    assert httpx.post(f"{code.url}/api/enroll", json={"token": code.token}, timeout=30).status_code == 200
    ok(call(host, "POST", "manage/catalog", ADMIN_KEY, {"products": [{"sku": SKU, "name": "Rice 5kg", "price": 45000}]}))
    letter = TableStore(conn, PREFIX).add_dead_letter(
        DeadLetter(received_at=datetime.now(timezone.utc), code="malformed_message", reason="not a frame", raw=b"junk"))
    people = {name: ok(call(host, "POST", "manage/people", ADMIN_KEY, {"name": name, "roles": roles}))["credential"]
              for name, roles in [("rahima", ["reports"]), ("karim", ["catalog"])]}
    return {"name": BRANCH, "sku": SKU, "id": letter, "people": people}


def snapshot(conn: str) -> dict:
    """Every entity of every table of the deployment (its ETag too), but the audit, which grows by design."""
    service = TableServiceClient.from_connection_string(conn)
    tables = {}
    for t in service.list_tables():
        if t.name.startswith(PREFIX) and t.name != PREFIX + AUDIT:
            rows = service.get_table_client(t.name).list_entities()
            tables[t.name] = sorted((e["PartitionKey"], e["RowKey"], e.metadata["etag"], repr(sorted(e.items())))
                                    for e in rows)
    return tables


BODIES = {
    ("POST", "manage/branches"): {"name": "new-branch"},
    ("POST", "manage/catalog"): {"products": [{"sku": SKU, "name": "Rice 5kg", "price": 1}]},
    ("POST", "manage/people"): {"name": "mallory", "roles": ["admin"]},
}


def changing_routes():
    return sorted((m, t) for m, t in registered_manage_routes() if ROUTE_ROLES[(m, t)] != Role.REPORTS)


def filled(template: str, world: dict) -> str:
    name = "karim" if template.startswith("manage/people") else world["name"]
    return template.replace("{name}", name).replace("{sku}", world["sku"]).replace("{id}", world["id"])


def test_a_reports_credential_is_refused_every_changing_route_with_the_role_it_needs_and_nothing_changes(host, world):
    _, conn = host
    reader = world["people"]["rahima"]
    before = snapshot(conn)
    walked = changing_routes()
    assert len(walked) >= 10  # branches, catalog, dead letters, people: the walk found them all
    for method, template in walked:
        resp = call(host, method, filled(template, world), reader, BODIES.get((method, template)))
        assert resp.status_code == 403, (method, template, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "forbidden"
        assert f"needs the role {ROUTE_ROLES[(method, template)]}" in error["message"] and "rahima" in error["message"]
    assert snapshot(conn) == before

    audit = ok(call(host, "GET", "manage/audit?who=rahima&limit=1000", ADMIN_KEY))["entries"]
    refused = {(e["method"], e["route"]): e for e in audit if e["status"] == 403}
    assert set(refused) == set(walked)
    revoke = refused[("POST", "manage/branches/{name}/revoke")]
    assert revoke["who"] == "rahima" and revoke["via"] == "credential" and revoke["role"] == "branches"
    assert revoke["result"] == "forbidden" and f"name={BRANCH}" in revoke["what"]


def test_a_reports_credential_reads_listings_and_exports_and_says_who_it_is(host, world):
    reader = world["people"]["rahima"]
    assert ok(call(host, "GET", "manage/whoami", reader)) == {"name": "rahima", "roles": ["reports"], "via": "credential"}
    assert BRANCH in [b["branch"] for b in ok(call(host, "GET", "manage/branches", reader))["branches"]]
    assert "sales" in ok(call(host, "GET", "manage/sales", reader))
    assert world["id"] in [d["id"] for d in ok(call(host, "GET", "manage/deadletters", reader))["dead_letters"]]
    report = ok(call(host, "GET", "manage/reports/sales?from=2026-11-01&to=2026-11-30&by=branch", reader))
    assert [row[0] for row in report["rows"]] == [BRANCH] and report["report"] == "sales"
    assert call(host, "GET", "manage/people", reader).status_code == 403


def test_a_catalog_credential_changes_the_catalog_but_no_branch(host, world):
    keeper = world["people"]["karim"]
    product = {"sku": "OIL-ROLES", "name": "Soybean oil 1L", "price": 19000}
    assert ok(call(host, "POST", "manage/catalog", keeper, {"products": [product]}))["written"] == 1
    refused = call(host, "POST", f"manage/branches/{BRANCH}/revoke", keeper)
    assert refused.status_code == 403 and "needs the role branches" in refused.json()["error"]["message"]


def test_a_revoked_credential_is_refused_with_401_saying_when_and_by_whom(host, world):
    credential = ok(call(host, "POST", "manage/people", ADMIN_KEY, {"name": "leaver", "roles": ["admin"]}))["credential"]
    assert call(host, "GET", "manage/whoami", credential).status_code == 200
    assert ok(call(host, "POST", "manage/people/leaver/revoke", ADMIN_KEY))["already_revoked"] is False
    refused = call(host, "GET", "manage/whoami", credential)
    assert refused.status_code == 401
    message = refused.json()["error"]["message"]
    assert "refused" in message and "revoked" in message and "admin-key" in message
    listed = {p["name"]: p for p in ok(call(host, "GET", "manage/people", ADMIN_KEY))["people"]}
    assert listed["leaver"]["revoked_by"] == "admin-key" and listed["rahima"]["revoked_at"] is None


def test_a_wrong_secret_for_a_real_name_and_a_wrong_admin_key_are_refused_with_401(host, world):
    forged = world["people"]["rahima"][:-4] + "AAAA"
    for key in (forged, "bsh1.nobody.secret", "not-the-admin-key"):
        resp = call(host, "GET", "manage/branches", key)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthenticated", key


def test_the_stored_person_holds_a_salted_hash_and_never_the_secret(host, world):
    _, conn = host
    credential = world["people"]["rahima"]
    secret = credential.rsplit(".", 1)[1]
    stored = TableServiceClient.from_connection_string(conn).get_table_client(PREFIX + "people").get_entity("person", "rahima")
    assert set(stored) == {"PartitionKey", "RowKey", "roles", "salt", "secret_hash", "created_at", "created_by"}
    assert len(bytes.fromhex(stored["salt"])) == 16 and len(bytes.fromhex(stored["secret_hash"])) == 32
    assert secret not in repr(dict(stored)) and credential not in repr(dict(stored))


def test_a_client_principal_header_naming_an_admin_grants_nothing(host, world):
    # The header App Service Authentication would set; the cloud never trusts it (SECURITY.md).
    principal = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [{"typ": "roles", "val": "admin"}],
                                             "name_typ": "name", "role_typ": "roles"}).encode()).decode()
    cloud, _ = host
    headers = {"X-MS-CLIENT-PRINCIPAL": principal, "X-MS-CLIENT-PRINCIPAL-NAME": "mallory@example.com"}
    resp = httpx.post(f"{cloud.url}/api/manage/branches/{BRANCH}/revoke", headers=headers, timeout=30)
    assert resp.status_code == 401
    reader = {**headers, "X-Branchsync-Admin-Key": world["people"]["rahima"]}
    assert httpx.post(f"{cloud.url}/api/manage/branches/{BRANCH}/revoke", headers=reader, timeout=30).status_code == 403


def test_no_issued_secret_and_not_the_admin_key_appear_in_the_cloud_log(host, world):
    cloud, _ = host
    call(host, "GET", "manage/whoami", world["people"]["karim"])
    logged = cloud.log.read_text()
    assert "audit who=karim GET manage/whoami" in logged  # the log holds the audit's second copy
    for credential in world["people"].values():
        assert credential.rsplit(".", 1)[1] not in logged
    assert ADMIN_KEY not in logged
