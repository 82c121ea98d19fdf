"""Build dist/branchsync_admin-<version>-py3-none-any.whl: branchsync-admin for head office.

The wheel holds the admin CLI's modules of headoffice/ (not the dev host or the local
stand-ins) and the `shared/` wire contract, with packaging/admin/pyproject.toml as its
metadata. They are copied into build/admin-wheel/ first, because a project can only package
files under its own folder. Installed on any Windows or Linux PC with Python 3.11+:

    pipx install dist/branchsync_admin-0.1.0-py3-none-any.whl

    python packaging/admin/build_wheel.py                 # -> dist/
    python packaging/admin/build_wheel.py --output-dir x
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STAGE = ROOT / "build" / "admin-wheel"
# What the admin CLI imports, and nothing else (headoffice/devhost.py imports the cloud).
HEADOFFICE_MODULES = ["__init__.py", "admin_cli.py", "admin_client.py", "admin_tables.py", "catalog_csv.py", "report_files.py",
                      "report_html.py", "sales_rows.py", "spreadsheet.py"]
PACKAGES = ("headoffice/", "shared/")


def stage(into: Path = STAGE) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    (into / "headoffice").mkdir(parents=True)
    shutil.copy2(HERE / "pyproject.toml", into / "pyproject.toml")
    for name in HEADOFFICE_MODULES:
        shutil.copy2(ROOT / "headoffice" / name, into / "headoffice" / name)
    shutil.copytree(ROOT / "shared", into / "shared", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def build(output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    before = set(output_dir.glob("branchsync_admin-*.whl"))
    for old in before:
        old.unlink()  # one wheel in dist/, so `pipx install dist/branchsync_admin-*.whl` names one file
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(output_dir),
                    str(stage())], check=True)
    (wheel,) = output_dir.glob("branchsync_admin-*.whl")
    strays = [n for n in modules(wheel) if not n.startswith(PACKAGES)]
    if strays:
        raise SystemExit(f"build_wheel: {wheel.name} holds modules head office does not need: {', '.join(strays)}")
    return wheel


def modules(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return [n for n in z.namelist() if n.endswith(".py")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    wheel = build(parser.parse_args().output_dir)
    print(wheel)


if __name__ == "__main__":
    main()
