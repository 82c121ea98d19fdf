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


def _versions(out: str, count: int) -> tuple[int, int]:
    found = re.search(rf"deleted {count} products? \(catalog versions? (\d+)(?:\.\.(\d+))?\)", out)
    assert found, out
    return int(found[1]), int(found[2] or found[1])


@pytest.mark.e2e
@pytest.mark.azurite
def test_catalog_delete_takes_skus_and_a_file_of_them_and_deletes_them_in_one_change(tmp_path, env, branch_name):
    skus = [f"{branch_name}-{i}" for i in range(6)]
    admin(env, "catalog", "import", _catalog(tmp_path / "a.csv", [(s, f"Product {s}", "10") for s in skus]))
    listing = tmp_path / "discontinued.txt"
    listing.write_text(f"# discontinued in December\n{skus[2]}\n\n  {skus[3]}   # the old pack\n{skus[4]}\n", encoding="utf-8")
    out = admin(env, "catalog", "delete", skus[0], skus[1], "--file", str(listing)).stdout
    lo, hi = _versions(out, 5)
    assert hi - lo == 4  # one change: consecutive versions
    # Run again with one more: those deleted already are skipped and said so.
    again = admin(env, "catalog", "delete", skus[0], skus[5]).stdout
    assert _versions(again, 1)[0] > hi and "1 was deleted already" in again
    # One SKU alone is deleted as it always was, and one deleted already is refused as before.
    restored = admin(env, "catalog", "import", _catalog(tmp_path / "b.csv", [(skus[0], "Back again", "12")])).stdout
    assert "1 changed" in restored
    one = admin(env, "catalog", "delete", skus[0]).stdout
    assert re.fullmatch(rf"deleted {skus[0]} \(catalog version \d+\)\n", one), one
    twice = runner.invoke(admin_cli.app, ["--url", env["BRANCHSYNC_URL"], "catalog", "delete", skus[0]], env=env)
    assert twice.exit_code == 1 and "unknown or already deleted" in _said(twice)


@pytest.mark.e2e
@pytest.mark.azurite
def test_catalog_delete_naming_a_sku_never_imported_deletes_nothing_and_says_which_to_check(tmp_path, env, branch_name):
    skus = [f"{branch_name}-{i}" for i in range(2)]
    admin(env, "catalog", "import", _catalog(tmp_path / "a.csv", [(s, f"Product {s}", "10") for s in skus]))
    never = f"{branch_name}-NEVER"
    result = runner.invoke(admin_cli.app, ["--url", env["BRANCHSYNC_URL"], "catalog", "delete", skus[0], never, skus[1]], env=env)
    said = _said(result)
    assert result.exit_code == 1, said
    assert never in said and "Nothing was deleted" in said and "leave out those the catalog never had" in said
    assert skus[0] not in said.replace(never, "")
    # Nothing was: both are deleted now, in one change.
    assert _versions(admin(env, "catalog", "delete", *skus).stdout, 2)


@pytest.mark.e2e
@pytest.mark.azurite
def test_catalog_delete_stopped_part_way_says_what_it_deleted_and_that_it_can_run_again(tmp_path, env, branch_name, monkeypatch):
    monkeypatch.setattr(admin_cli, "IMPORT_CHUNK", 2)
    skus = [f"{branch_name}-{i}" for i in range(4)]
    admin(env, "catalog", "import", _catalog(tmp_path / "a.csv", [(s, f"Product {s}", "10") for s in skus]))
    listed = [skus[0], skus[1], f"{branch_name}-NEVER", skus[2], skus[3]]
    result = runner.invoke(admin_cli.app, ["--url", env["BRANCHSYNC_URL"], "catalog", "delete", *listed], env=env)
    said = _said(result)
    assert result.exit_code == 1, said
    assert "The first 2 SKUs of the list are done: deleted 2 products" in said and "Nothing after them was deleted" in said
    assert "run the same delete again" in said
    listed.remove(f"{branch_name}-NEVER")
    again = admin(env, "catalog", "delete", *listed).stdout
    assert _versions(again, 2) and "2 were deleted already" in again


@pytest.mark.parametrize("args, said", [
    (["A B"], "argument 1: 'A B' is not a SKU"),
    (["A", "B", "A"], "argument 3: SKU A is already named at argument 1"),
    ([], "no SKU to delete"),
])
def test_catalog_delete_of_a_bad_list_deletes_nothing_and_sends_nothing(args, said):
    # Port 9 (discard) has no listener: reaching the network would fail differently, with exit 1.
    result = runner.invoke(admin_cli.app, ["--url", "http://127.0.0.1:9", "catalog", "delete", *args],
                           env={"COLUMNS": "200", "BRANCHSYNC_ADMIN_KEY": "k"})
    assert result.exit_code == 2 and said in _said(result) and "Nothing was deleted" in _said(result)


def test_a_file_of_skus_to_delete_names_the_line_of_each_problem(tmp_path):
    listing = tmp_path / "gone.txt"
    listing.write_text("\ufeffRICE\n# a comment\nOIL 1L\n\nRICE  # again\n", encoding="utf-8")
    with pytest.raises(admin_cli.SkuListError) as err:
        admin_cli.parse_sku_list(["SALT"], listing.read_text(encoding="utf-8"), str(listing))
    assert err.value.problems == [f"{listing} line 3: 'OIL 1L' is not a SKU (1 to 64 characters, without spaces or / \\ # ?)",
                                  f"{listing} line 5: SKU RICE is already named at {listing} line 1"]
    assert admin_cli.parse_sku_list(["SALT"], "RICE\n# OIL\n\nসাবান # soap\n", "f") == ["SALT", "RICE", "সাবান"]


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
