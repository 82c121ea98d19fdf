"""The support bundle: one zip a shop manager can send to head office when asked.

It holds what head office needs to understand the till over the phone: recent logs, the
status, the doctor's findings, the schema version and the list of backups. It never holds
the branch secret or the database; text is passed through the log's redaction as well.
"""

import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from . import backup as backups
from . import logs, paths
from .errors import StoreError
from .identity import read_secret
from .status import BranchStatus
from .version import version

SUPPORT_DIR = "support"


def default_path(home: Path, now: datetime) -> Path:
    return Path(home) / SUPPORT_DIR / f"branchsync-support-{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}.zip"


def write_bundle(home: Path, target: Path, *, status: BranchStatus, doctor: dict, now: datetime) -> Path:
    """Write the zip at `target` (made in a temporary file first, so a half bundle is never left)."""
    home = Path(home)
    try:  # the secret itself, not its file (sealed with DPAPI on Windows), is what must never appear
        secret = read_secret(paths.secret_path(home)) or ""
    except StoreError:  # unreadable here, so it cannot have leaked into this home's logs either
        secret = ""
    clean = lambda text: logs.redact(text, (secret,))  # noqa: E731 - one rule for every file

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        manifest = {"created_at": now.astimezone(timezone.utc).isoformat(), "branchsync_version": version(),
                    "branch": status.branch, "schema_version": status.schema_version,
                    "home": str(home)}
        bundle.writestr("manifest.json", clean(json.dumps(manifest, indent=2, ensure_ascii=False)))
        bundle.writestr("status.json", clean(json.dumps(status.as_json(), indent=2, ensure_ascii=False, default=str)))
        bundle.writestr("doctor.json", clean(json.dumps(doctor, indent=2, ensure_ascii=False, default=str)))
        listing = [f"{p.name}\t{p.stat().st_size}" for p in backups.backups(home)]
        bundle.writestr("backups.txt", "\n".join(listing) + "\n" if listing else "no backups yet\n")
        log_dir = logs.log_path(home).parent
        for log_file in sorted(log_dir.glob(logs.log_path(home).name + "*")) if log_dir.is_dir() else []:
            text = log_file.read_text(encoding="utf-8", errors="replace")
            bundle.writestr(f"logs/{log_file.name}", clean(text))
    part.replace(target)
    return target
