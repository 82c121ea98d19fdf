"""branchsync sets its process's garbage collector at start (collector.py)."""

import subprocess
import sys

from branch_client import collector

PROBE = """
import gc, sys
sys.argv = ["branchsync", "--version"]
from branch_client import cli
try:
    cli.main()
except SystemExit:
    pass
print("THRESHOLD", *gc.get_threshold())
"""


def test_every_branchsync_process_collects_young_objects_every_50000_not_700():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.rsplit("THRESHOLD", 1)[1].split() == ["50000", "10", "10"]
    assert collector.THRESHOLDS == (50_000, 10, 10)
