"""The branchsync-admin wheel head office installs: built, installed into a fresh virtual
environment (its dependencies come from the package index), and run against the dev host."""

import importlib.util
import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "admin" / "build_wheel.py"
# Loaded from its file: `packaging` is also the name of a library on sys.path.
_spec = importlib.util.spec_from_file_location("build_wheel", SCRIPT)
build_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_wheel)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The venv's bin (Scripts on Windows) folder after `pip install <wheel>`, as a head-office PC would have it."""
    root = tmp_path_factory.mktemp("headoffice-pc")
    venv.create(root / "venv", with_pip=True)
    bindir = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=600)
    return bindir


def outside_the_repository(env: dict, tmp_path) -> dict:
    """Run from an empty folder with no PYTHONPATH, so only what the wheel installed can be imported."""
    return {"env": {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}, "cwd": tmp_path,
            "text": True, "capture_output": True, "timeout": 120}


def test_the_wheel_holds_the_admin_cli_and_the_wire_contract_and_nothing_of_the_branch_or_the_cloud(wheel):
    names = build_wheel.modules(wheel)
    assert "headoffice/admin_cli.py" in names and "shared/models.py" in names and "shared/access.py" in names
    assert all(n.startswith(("headoffice/", "shared/")) for n in names), names
    assert not {"headoffice/devhost.py", "headoffice/stand_ins.py"} & set(names)


def test_the_installed_wheel_runs_help_and_adds_and_lists_a_branch_on_the_dev_host(installed, admin_env, cloud,
                                                                                  branch_name, tmp_path):
    run = outside_the_repository({**admin_env, "BRANCHSYNC_URL": cloud.url}, tmp_path)
    helped = subprocess.run([str(installed / "branchsync-admin"), "--help"], **run)
    assert helped.returncode == 0 and "deadletter" in helped.stdout, helped.stderr

    added = subprocess.run([str(installed / "branchsync-admin"), "branch", "add", branch_name], **run)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([str(installed / "branchsync-admin"), "branches", "--json"], **run)
    assert branch_name in [b["branch"] for b in json.loads(listed.stdout)["branches"]], listed.stderr

    probe = "import importlib.util as u; print([m for m in ('branch_client', 'branchsync_cloud', 'azure') if u.find_spec(m)])"
    left_out = subprocess.run([str(installed / "python"), "-c", probe], **run)
    assert left_out.stdout.strip() == "[]", left_out.stderr

    me = subprocess.run([str(installed / "branchsync-admin"), "whoami"], **run)
    assert me.returncode == 0 and me.stdout.strip() == "admin-key (admin key): roles admin", me.stderr

    # The morning report as a workbook: openpyxl came with the wheel.
    book = tmp_path / "morning.xlsx"
    report = subprocess.run([str(installed / "branchsync-admin"), "report", "sales", "--from", "2026-11-01", "--to",
                             "2026-11-30", "--branch", branch_name, "--format", "xlsx", "--output", str(book)], **run)
    assert report.returncode == 0 and book.stat().st_size > 0, report.stderr
