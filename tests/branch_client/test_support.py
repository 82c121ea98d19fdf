"""`branchsync support-bundle`: what head office needs, and never a secret."""

import json
import zipfile

from typer.testing import CliRunner

from branch_client import cli, logs
from tests.branch_client.conftest import enroll_out_of_reach

runner = CliRunner()
SECRET = "s3cr3t-" + "k" * 36


def test_a_support_bundle_holds_logs_status_doctor_and_backups_but_no_secret(home, monkeypatch):
    enroll_out_of_reach(home, monkeypatch, SECRET)  # the doctor reports the cloud out of reach in the bundle
    runner.invoke(cli.app, ["--home", str(home), "sync"])  # writes a log line and the daily backup
    # An older log line that carried the secret (say, from a debugging session) is masked too.
    with open(logs.log_path(home), "a", encoding="utf-8") as f:
        f.write(f"2026-11-01 debug secret in clear: {SECRET}\n")
    target = home / "bundle.zip"

    result = runner.invoke(cli.app, ["--home", str(home), "support-bundle", "--output", str(target)])
    assert result.exit_code == 0, result.output

    with zipfile.ZipFile(target) as bundle:
        names = bundle.namelist()
        assert {"manifest.json", "status.json", "doctor.json", "backups.txt", "logs/branchsync.log"} <= set(names)
        assert not any(n.endswith(".db") or n.endswith("secret") for n in names)
        everything = b"".join(bundle.read(n) for n in names)
        manifest = json.loads(bundle.read("manifest.json"))
        doctor = json.loads(bundle.read("doctor.json"))
        backups_txt = bundle.read("backups.txt").decode()
    assert SECRET.encode() not in everything
    assert manifest["branch"] == "dhaka-1" and manifest["schema_version"] >= 1
    assert doctor["needs_action"] and any(f["level"] == "fail" for f in doctor["findings"])
    assert "-daily.db" in backups_txt
