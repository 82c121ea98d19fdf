#!/usr/bin/env bash
# Build the one-file branch executable: dist/branchsync (dist/branchsync.exe on Windows).
#
# Uses a build environment of its own, build/exe-venv, with only the branch's runtime
# dependencies (packaging/exe/requirements.txt) and PyInstaller; the project itself is not
# pip-installed there: the spec puts the repository root on PyInstaller's path and takes
# branch_client/ and shared/ from it. Re-installs the requirements only when the file changed.
#
#   PYTHON=python3.11 bash packaging/exe/build.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="build/exe-venv"
REQS="packaging/exe/requirements.txt"
STAMP="$VENV/.installed"

started=$(date +%s)
if [ ! -d "$VENV" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if [ -x "$VENV/Scripts/python.exe" ]; then
    VPY="$VENV/Scripts/python.exe"      # Windows (Git Bash on the CI runner)
else
    VPY="$VENV/bin/python"
fi
if [ ! -f "$STAMP" ] || [ "$REQS" -nt "$STAMP" ]; then
    "$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VPY" -m pip install --quiet --disable-pip-version-check -r "$REQS"
    touch "$STAMP"
fi

"$VPY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/exe-work packaging/exe/branchsync.spec

exe="dist/branchsync"
[ -f "$exe.exe" ] && exe="$exe.exe"
size=$(wc -c < "$exe" | tr -d ' ')
echo "built $exe: $size bytes ($(( size / 1024 / 1024 )) MiB) in $(( $(date +%s) - started )) s"
