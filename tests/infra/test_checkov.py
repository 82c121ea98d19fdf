"""checkov's Bicep checks pass on infra/, offline, and every skip is written down with its reason.

checkov runs as a subprocess with everything that could reach the network turned off: no API
key, no policy/mapping download (BC_SKIP_MAPPING, --skip-download), no package scan, and a
proxy that refuses every connection, so a forgotten download fails fast instead of hanging.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
# checkov's own environment (Makefile: .venv-checkov), apart from the project's.
CHECKOV_PYTHON = ROOT / ".venv-checkov" / "bin" / "python"
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)$", re.M)

OFFLINE_ENV = {
    "BC_SKIP_MAPPING": "TRUE",
    "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    "BC_API_KEY": "",
    "PRISMA_API_URL": "",
    "LOG_LEVEL": "WARNING",
    # Anything that still tries to download gets "connection refused" at once (port 9: discard).
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


@pytest.fixture(scope="module")
def report() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "CKV_", "PRISMA_"))}
    env.update(OFFLINE_ENV)
    assert CHECKOV_PYTHON.exists(), f"checkov is not installed ({CHECKOV_PYTHON} is missing): run `make setup`"
    proc = subprocess.run(
        [str(CHECKOV_PYTHON), "-m", "checkov.main", "-d", str(INFRA), "--framework", "bicep",
         "--compact", "--skip-download", "--output", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    data = json.loads(proc.stdout)
    data["exit_code"] = proc.returncode
    return data


def resource_type(check: dict) -> str:
    # "Microsoft.Storage/storageAccounts.account" -> "Microsoft.Storage/storageAccounts"
    return check["resource"].rsplit(".", 1)[0]


def test_checkov_finds_no_failed_check(report):
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["exit_code"] == 0


def test_checkov_checked_the_storage_account_and_the_function_app(report):
    # A test that fails if checkov saw nothing (wrong directory, a file it cannot parse, ...).
    results = report["results"]
    checked = {resource_type(c) for c in results["passed_checks"] + results["skipped_checks"]}
    for rtype in ("Microsoft.Storage/storageAccounts", "Microsoft.Web/sites", "Microsoft.KeyVault/vaults"):
        assert rtype in checked, f"checkov ran no check against {rtype}"
    assert len(results["passed_checks"]) >= 20


def test_every_skipped_check_carries_a_reason(report):
    for check in report["results"]["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"


def test_every_skip_comment_in_the_bicep_suppresses_a_check_that_runs(report):
    # No stale skips: a skip comment for a check that does not fire hides nothing but misleads.
    skipped = {(Path(c["file_abs_path"]).resolve(), c["check_id"]) for c in report["results"]["skipped_checks"]}
    for path in sorted(INFRA.rglob("*.bicep")):
        for match in SKIP_COMMENT.finditer(path.read_text()):
            assert (path.resolve(), match.group(1)) in skipped, f"{path.name}: skip of {match.group(1)} suppresses nothing"
            assert match.group(2).strip(), f"{path.name}: skip of {match.group(1)} has no reason"


def test_deploy_doc_lists_every_skipped_check(report):
    # docs/deploy.md carries the table of skipped checks and their reasons; keep it complete.
    doc = (ROOT / "docs" / "deploy.md").read_text()
    missing = sorted({c["check_id"] for c in report["results"]["skipped_checks"]} - set(re.findall(r"CKV2?_[A-Z]+_\d+", doc)))
    assert missing == [], f"docs/deploy.md does not explain: {missing}"
