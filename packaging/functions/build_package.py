"""Build dist/function_app.zip: the package Azure Functions deploys.

The zip root holds what function_app/ holds (function_app.py, host.json, requirements.txt,
branchsync_cloud/) plus the project's `shared/` package, which function_app.py imports and which lives at
the repository root. Left out: __pycache__ and compiled files, local.settings*.json (local
secrets; never deployed) and tests, and whatever function_app/.funcignore names (the file
Core Tools and azd read when they package the folder themselves; gitignore-style lines, of
which this reads plain names, `*` globs and a trailing `/` for folders). The Functions platform installs requirements.txt at deploy
time (remote build), so no site-packages are bundled.

    python packaging/functions/build_package.py                  # -> dist/function_app.zip
    python packaging/functions/build_package.py --output x.zip
    python packaging/functions/build_package.py --vendor-shared  # azd prepackage hook
    python packaging/functions/build_package.py --unvendor-shared  # azd postpackage hook

The zip is deterministic (sorted entries, fixed timestamps), so the same tree gives the same
bytes and a redeploy of unchanged code is recognisable.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "function_app"
SHARED_DIR = ROOT / "shared"
DEFAULT_OUTPUT = ROOT / "dist" / "function_app.zip"
# Marks a shared/ copy made by --vendor-shared, so --unvendor-shared never deletes a real folder.
VENDOR_MARK = ".vendored-by-build-package"

EXCLUDED_DIRS = {"__pycache__", "tests", "test", ".venv", ".pytest_cache", ".python_packages"}
EXCLUDED_FILES = ["*.pyc", "*.pyo", "local.settings*.json", "test_*.py", "*_test.py", ".DS_Store", VENDOR_MARK]
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # zip timestamps cannot be before 1980


def funcignore(app_dir: Path = APP_DIR) -> tuple[set[str], list[str]]:
    """(folder patterns, file patterns) from app_dir/.funcignore; nothing when there is none."""
    path = app_dir / ".funcignore"
    dirs, files = set(), []
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            raise SystemExit(f"build_package: {path} uses a negated pattern ({line}), which this script does not apply")
        line = line.lstrip("/")
        if line.endswith("/"):
            dirs.add(line.rstrip("/"))
        else:
            files.append(line)
    return dirs, files


def is_excluded(rel: Path, app_dir: Path = APP_DIR) -> bool:
    ignored_dirs, ignored_files = funcignore(app_dir)
    if any(fnmatch.fnmatch(part, pattern) for part in rel.parts[:-1] for pattern in EXCLUDED_DIRS | ignored_dirs):
        return True
    return any(fnmatch.fnmatch(rel.name, pattern) or fnmatch.fnmatch(rel.as_posix(), pattern)
               for pattern in EXCLUDED_FILES + ignored_files)


def collect(app_dir: Path = APP_DIR, shared_dir: Path = SHARED_DIR) -> dict[str, Path]:
    """Zip entry name -> source file, for everything that goes into the package."""
    entries: dict[str, Path] = {}
    for base, prefix in ((app_dir, ""), (shared_dir, "shared/")):
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if path.is_dir() or is_excluded(rel, app_dir):
                continue
            if prefix == "" and rel.parts[0] == "shared":
                continue  # a vendored copy (see --vendor-shared); the real shared/ is added below
            entries[prefix + rel.as_posix()] = path
    for required in ("function_app.py", "host.json", "requirements.txt", "shared/__init__.py"):
        if required not in entries:
            raise SystemExit(f"build_package: {required} is missing; is {ROOT} a branchsync checkout?")
    return entries


def build(output: Path = DEFAULT_OUTPUT) -> Path:
    entries = collect()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[name].read_bytes())
    tmp.replace(output)  # never leave a half-written zip where a deploy could pick it up
    return output


def vendor_shared(app_dir: Path = APP_DIR, shared_dir: Path = SHARED_DIR) -> Path:
    """Copy shared/ into function_app/shared for tools that package function_app/ as is (azd)."""
    target = app_dir / "shared"
    if target.exists() and not (target / VENDOR_MARK).exists():
        raise SystemExit(f"build_package: {target} exists and was not made by this script; not touching it")
    unvendor_shared(app_dir)
    shutil.copytree(shared_dir, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (target / VENDOR_MARK).write_text("copied from ../shared for packaging; removed by --unvendor-shared\n")
    return target


def unvendor_shared(app_dir: Path = APP_DIR) -> None:
    target = app_dir / "shared"
    if (target / VENDOR_MARK).exists():
        shutil.rmtree(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Azure Functions deployment zip.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="zip to write (default: dist/function_app.zip)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--vendor-shared", action="store_true", help="copy shared/ into function_app/ (azd prepackage)")
    group.add_argument("--unvendor-shared", action="store_true", help="remove that copy again (azd postpackage)")
    args = parser.parse_args(argv)

    if args.vendor_shared:
        print(f"copied shared/ to {vendor_shared().relative_to(ROOT)}")
        return 0
    if args.unvendor_shared:
        unvendor_shared()
        print("removed function_app/shared (vendored copy)")
        return 0

    output = build(args.output.resolve())
    with zipfile.ZipFile(output) as zf:
        count = len(zf.namelist())
    size = output.stat().st_size
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    print(f"wrote {shown}: {count} files, {size:,} bytes ({size / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
