"""`branchsync-admin people`, `whoami` and `audit` in-process (typer's CliRunner) against the real dev host and Azurite."""

import json
import uuid

import pytest
from typer.testing import CliRunner

from headoffice import admin_cli

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
runner = CliRunner()


@pytest.fixture
def env(admin_env, cloud):
    return {**admin_env, "BRANCHSYNC_URL": cloud.url, "COLUMNS": "80"}


@pytest.fixture
def person() -> str:
    """A name no other test uses (the session's dev host is shared)."""
    return "p" + uuid.uuid4().hex[:10]


def run(env, *args, **extra):
    return runner.invoke(admin_cli.app, ["--url", env["BRANCHSYNC_URL"], *args], env={**env, **extra})


def said(result) -> str:
    return " ".join(result.output.split())  # Rich wraps long lines; read the words as one line


def issue(env, name, *roles) -> str:
    result = run(env, "people", "add", name, *[a for r in roles for a in ("--role", r)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_a_credential_is_printed_once_and_whoami_names_it_and_its_roles(env, person):
    credential = issue(env, person, "reports", "catalog")
    assert credential.startswith(f"bsh1.{person}.")
    me = run(env, "whoami", BRANCHSYNC_CREDENTIAL=credential)
    assert me.exit_code == 0 and said(me) == f"{person} (credential): roles reports, catalog"
    assert said(run(env, "whoami")) == "admin-key (admin key): roles admin"  # no credential: the admin key
    listed = run(env, "people", "list", "--json")
    assert person in listed.stdout and credential.rsplit(".", 1)[1] not in listed.stdout


def test_a_reports_credential_cannot_revoke_a_branch_and_is_told_which_role_that_needs(env, person, branch_name):
    assert run(env, "branch", "add", branch_name).exit_code == 0
    reader = issue(env, person, "reports")
    refused = run(env, "branch", "revoke", branch_name, BRANCHSYNC_CREDENTIAL=reader)
    assert refused.exit_code == 1 and "needs the role branches" in said(refused) and "HTTP 403" in said(refused)
    listed = json.loads(run(env, "branches", "--json", BRANCHSYNC_CREDENTIAL=reader).stdout)["branches"]
    assert [b["revoked_at"] for b in listed if b["branch"] == branch_name] == [None]


def test_a_revoked_credential_is_refused_and_told_where_a_credential_comes_from(env, person):
    credential = issue(env, person, "admin")
    assert run(env, "people", "revoke", person).exit_code == 0
    refused = run(env, "whoami", BRANCHSYNC_CREDENTIAL=credential)
    assert refused.exit_code == 1
    assert "refused this head-office credential" in said(refused) and "revoked" in said(refused)
    assert "BRANCHSYNC_CREDENTIAL" in said(refused)
    again = run(env, "people", "revoke", person)
    assert again.exit_code == 0 and "already revoked" in said(again)


def test_the_audit_shows_who_did_what_with_the_result_in_80_columns(env, person, branch_name):
    keeper = issue(env, person, "catalog")
    assert run(env, "branch", "add", branch_name, BRANCHSYNC_CREDENTIAL=keeper).exit_code == 1
    shown = run(env, "audit", "--who", person)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines and all(len(line) <= 80 for line in lines), shown.stdout
    assert "…" not in shown.stdout and person in shown.stdout and "forbidden" in shown.stdout
    assert "1 audit entries" in said(shown)  # only this person's: the admin key's own requests are left out
    [entry] = [json.loads(line) for line in run(env, "audit", "--who", person, "--json").stdout.splitlines()]
    assert (entry["method"], entry["route"], entry["role"]) == ("POST", "manage/branches", "branches")
    assert (entry["status"], entry["result"], entry["what"]) == (403, "forbidden", f"name={branch_name}")
    admins = run(env, "audit", "--who", "admin-key", "--json")
    assert f'"what":"name={person} roles=catalog"' in admins.stdout


def test_a_person_name_the_cloud_cannot_take_is_refused_before_anything_is_stored(env):
    result = run(env, "people", "add", "Not A Name", "--role", "reports")
    assert result.exit_code == 2 and "lower-case" in said(result) and "nothing was stored" in said(result)
    result = run(env, "people", "add", "admin-key", "--role", "reports")
    assert result.exit_code == 2 and "admin key" in said(result)
    assert "Not A Name" not in run(env, "people", "list", "--json").stdout
