"""Enrollment codes work once and for 24 hours, and leave the till ready to sell: the real CLI against the dev host and Azurite."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from branchsync_cloud.table_store import TableStore
from tests.e2e.test_console_scripts import cli, write_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@pytest.fixture
def env(admin_env, cloud):
    return {**admin_env, "BRANCHSYNC_URL": cloud.url}


def test_a_used_enrollment_code_is_refused_on_a_second_pc_saying_to_ask_for_a_new_one(tmp_path, env, branch_name):
    code = cli("branchsync-admin", "branch", "add", branch_name, env=env).stdout.strip()
    cli("branchsync", "--home", tmp_path / "first", "enroll", code, env=env)
    second = cli("branchsync", "--home", tmp_path / "second", "enroll", code, env=env, check=False)
    assert second.returncode == 2 and "enrollment_invalid" in second.stderr  # not 1: trying again will not help
    assert "already used" in second.stderr and "ask head office for a new code" in second.stderr
    assert json.loads(cli("branchsync", "--home", tmp_path / "second", "status", "--json", env=env).stdout)["enrolled"] is False


def test_an_expired_enrollment_code_is_refused_saying_codes_last_24_hours(tmp_path, env, storage, branch_name):
    code = cli("branchsync-admin", "branch", "add", branch_name, env=env).stdout.strip()
    # A day has passed: the code's expiry is moved into the past in storage (the dev host's clock is real).
    store = TableStore(storage)
    record = store.get_branch(branch_name)
    record.token_expires = datetime.now(timezone.utc) - timedelta(minutes=1)
    store.replace_branch(record)
    refused = cli("branchsync", "--home", tmp_path / "till", "enroll", code, env=env, check=False)
    assert refused.returncode == 2 and "expired" in refused.stderr and "24 hours" in refused.stderr


def test_a_freshly_enrolled_till_sells_from_the_catalog_before_its_first_sync(tmp_path, env, branch_name):
    sku = f"TEA-{branch_name}"  # the dev host's catalog is shared by every e2e test: this product is this test's
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "চা পাতা", "95", "pcs")]), env=env)
    code = cli("branchsync-admin", "branch", "add", branch_name, env=env).stdout.strip()
    enrolled = cli("branchsync", "--home", tmp_path / "till", "enroll", code, env=env)
    assert "catalog pulled" in enrolled.stdout and "ready to sell" in enrolled.stdout
    sold = cli("branchsync", "--home", tmp_path / "till", "sale", "add", f"{sku}=2", env=env)
    assert "total 190.00 taka" in sold.stdout
