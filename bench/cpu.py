"""CPU seconds of the processes a benchmark runs, read from /proc (Linux); the bench's own
process set up as a till's is."""

import gc
import os
import resource
import time
from pathlib import Path

from branch_client import collector

_TICK = os.sysconf("SC_CLK_TCK")


def like_a_till_process() -> None:
    """Before a measured run of the till's code in the bench's process: the collector as
    `branchsync` sets it at start (branch_client.collector), and what the bench itself holds
    (its catalog of 100,000 products, the sales it made) left out of the collections, as no
    till holds it: walking it took 0.6 s of a first pull's CPU."""
    collector.settle()
    gc.collect()
    gc.freeze()


def cpu_of(pid: int) -> float:
    """CPU seconds of a process and its waited-for children (utime, stime, cutime, cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / _TICK


class CpuMeter:
    """CPU seconds spent since `start()`: this process, its finished children, and named other processes."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"self": time.process_time(), "children": children.ru_utime + children.ru_stime,
                **{name: cpu_of(pid) for name, pid in self.pids.items()}}

    def start(self) -> None:
        self._start = self._now()

    def spent(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self._start.get(name, 0.0) for name in now}
