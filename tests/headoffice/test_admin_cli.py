"""`branchsync-admin` in-process (typer's CliRunner) against the real dev host and Azurite."""

import re

import pytest
from typer.testing import CliRunner

from headoffice import admin_cli
from headoffice.stand_ins import start_cloud

runner = CliRunner()


def admin(env, *args):
    result = runner.invoke(admin_cli.app, ["--url", env["BRANCHSYNC_URL"], *args], env=env)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def env(admin_env, cloud):
    return {**admin_env, "BRANCHSYNC_URL": cloud.url, "COLUMNS": "200"}


def _catalog(path, rows) -> str:
    path.write_text("sku,name,price\n" + "".join(f"{sku},{name},{price}\n" for sku, name, price in rows), encoding="utf-8")
    return str(path)


@pytest.mark.e2e
@pytest.mark.azurite
def test_the_import_summary_names_only_the_versions_it_wrote_when_the_first_chunk_is_unchanged(
        tmp_path, env, branch_name, monkeypatch):
    monkeypatch.setattr(admin_cli, "IMPORT_CHUNK", 2)  # four products: two chunks
    rows = [(f"{branch_name}-{i}", f"Product {i}", "10") for i in range(4)]
    first = admin(env, "catalog", "import", _catalog(tmp_path / "a.csv", rows)).stdout
    lo, hi = map(int, re.search(r"4 changed \(catalog versions (\d+)\.\.(\d+)\)", first).groups())
    assert hi - lo == 3

    rows[3] = (rows[3][0], rows[3][1], "12")  # only the second chunk changes
    again = admin(env, "catalog", "import", _catalog(tmp_path / "b.csv", rows)).stdout
    wrote = re.search(r"1 changed \(catalog versions (\d+)\.\.(\d+)\), 3 unchanged", again)
    assert wrote and wrote[1] == wrote[2] and int(wrote[1]) > hi, again

    same = admin(env, "catalog", "import", _catalog(tmp_path / "c.csv", rows)).stdout
    assert "none changed" in same and "catalog versions" not in same


def _said(result) -> str:
    return " ".join(result.output.split())  # Rich wraps long lines; read the words as one line


@pytest.mark.e2e
@pytest.mark.azurite
def test_a_wrong_admin_key_is_reported_as_refused_with_where_the_right_key_comes_from(env):
    result = runner.invoke(admin_cli.app, ["--url", env["BRANCHSYNC_URL"], "branches"],
                           env={**env, "BRANCHSYNC_ADMIN_KEY": "not-the-key"})
    said = _said(result)
    assert result.exit_code == 1, said
    assert "the cloud refused the admin key" in said and "BRANCHSYNC_ADMIN_KEY" in said and "branchsync-admin-key" in said
    assert "need the header" not in said


@pytest.mark.parametrize("key", [None, "", "  "])
def test_a_missing_admin_key_is_reported_as_not_set_before_anything_is_sent(key):
    # Port 9 (discard) has no listener: reaching the network would fail differently, with exit 1.
    result = runner.invoke(admin_cli.app, ["--url", "http://127.0.0.1:9", "branches"], env={"COLUMNS": "200", "BRANCHSYNC_ADMIN_KEY": key})  # None unsets it
    assert result.exit_code == 2 and "BRANCHSYNC_ADMIN_KEY is not set" in _said(result)


@pytest.mark.e2e
@pytest.mark.azurite
def test_a_cloud_without_a_usable_admin_key_is_reported_as_such_not_as_a_wrong_key(tmp_path, storage):
    keyless = start_cloud(tmp_path / "cloud", storage, admin_key="")
    try:
        result = runner.invoke(admin_cli.app, ["--url", keyless.url, "branches"],
                               env={"COLUMNS": "200", "BRANCHSYNC_ADMIN_KEY": "any-key"})
    finally:
        keyless.stop()
    said = _said(result)
    assert result.exit_code == 1, said
    assert "cannot check any admin key" in said and "BRANCHSYNC_ADMIN_KEY is empty" in said
    assert "refused the admin key" not in said
