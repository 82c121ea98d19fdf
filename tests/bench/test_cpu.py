"""The CPU meter the comparison's notes come from, against real processes."""

import os
import subprocess
import sys
import time

from bench.cpu import CpuMeter, cpu_of

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_the_meter_counts_this_process_a_finished_child_and_a_process_named_by_pid():
    # The other process burns only once told to, after the meter started.
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()\n" + BURN + "sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        meter = CpuMeter({"other": other.pid})
        meter.start()
        before = cpu_of(other.pid)
        other.stdin.write(b"go\n")
        other.stdin.flush()
        subprocess.run([sys.executable, "-c", BURN], check=True)
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        deadline = time.monotonic() + 30
        while cpu_of(other.pid) - before < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        spent = meter.spent()
    finally:
        other.communicate(timeout=30)
    assert spent["self"] >= 0.2 and spent["children"] >= 0.25 and spent["other"] >= 0.25
    assert set(spent) == {"self", "children", "other"}


def test_a_process_reads_its_own_cpu_from_proc():
    assert cpu_of(os.getpid()) > 0
