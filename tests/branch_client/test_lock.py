"""The sync lock (branch_client.lock): who holds it, and taking over from a dead or orphaned holder.

Holders are real processes: a sync lock taken in a child Python process, killed or
orphaned the way Task Scheduler's time limit leaves a one-file executable's Python process.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from branch_client import lock as locks
from branch_client import processes
from branch_client.errors import SyncAlreadyRunning

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from pathlib import Path
import branch_client.lock as locks
if sys.argv[2] == "onefile":
    locks.is_onefile_child = lambda: True   # as in the frozen executable, whose parent is the bootloader
held = locks.SyncLock(Path(sys.argv[1]))
held.acquire()
Path(sys.argv[1], "holder.pid").write_text(str(__import__("os").getpid()))
time.sleep(600)
"""

# The bootloader's stand-in: starts the holder as its child, then waits for ever.
BOOTLOADER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], "onefile"])
time.sleep(600)
"""


def wait_for(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.is_running(processes.ProcessId(pid, None)):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def spawn():
    started: list[subprocess.Popen] = []

    def start(*args) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_sync_is_told_which_process_holds_the_lock(tmp_path, spawn):
    spawn("-c", HOLDER, str(tmp_path), "plain")
    pid = int(wait_for(tmp_path / "holder.pid"))
    started = time.monotonic()
    with pytest.raises(SyncAlreadyRunning, match=f"already running for this branch \\(process {pid}, since "):
        locks.SyncLock(tmp_path).acquire()
    assert time.monotonic() - started < locks.RELEASE_WAIT  # at once, not after the takeover wait


def test_the_lock_of_a_killed_holder_is_taken_and_its_stale_owner_record_replaced(tmp_path, spawn):
    holder = spawn("-c", HOLDER, str(tmp_path), "plain")
    pid = int(wait_for(tmp_path / "holder.pid"))
    holder.kill()
    holder.wait()
    assert json.loads((tmp_path / "sync.lock.owner").read_text())["process"]["pid"] == pid  # left behind
    with locks.SyncLock(tmp_path) as held:
        assert held.read_owner()["process"]["pid"] == os.getpid()
    assert not (tmp_path / "sync.lock.owner").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="the orphan is made with POSIX process groups here; "
                                                    "Windows keeps the tree in a job object (tests/exe)")
def test_an_orphaned_one_file_holder_is_ended_and_the_lock_taken_over(tmp_path, spawn):
    bootloader = spawn("-c", BOOTLOADER, HOLDER, str(tmp_path))
    pid = int(wait_for(tmp_path / "holder.pid"))
    owner = json.loads((tmp_path / "sync.lock.owner").read_text())
    assert owner["onefile"] is True and owner["parent"]["pid"] == bootloader.pid
    bootloader.kill()  # what a time limit does to the bootloader only
    bootloader.wait()
    assert processes.is_running(processes.ProcessId.from_dict(owner["process"]))  # the orphan lives on

    with locks.SyncLock(tmp_path) as held:
        assert held.read_owner()["process"]["pid"] == os.getpid()
    assert gone(pid)


def test_a_live_holder_that_is_not_the_one_file_child_is_never_ended(tmp_path, spawn):
    ended = []
    spawn("-c", HOLDER, str(tmp_path), "plain")
    wait_for(tmp_path / "holder.pid")
    with pytest.raises(SyncAlreadyRunning):
        locks.SyncLock(tmp_path, end_process=ended.append).acquire()
    assert ended == []


def test_a_holder_that_records_nothing_is_still_respected(tmp_path):
    from filelock import FileLock

    with FileLock(str(tmp_path / "sync.lock"), timeout=0):  # how backup.restore takes it
        with pytest.raises(SyncAlreadyRunning, match="already running"):
            locks.SyncLock(tmp_path).acquire()


def test_a_reused_pid_does_not_count_as_the_holder():
    me = processes.identify()
    assert processes.is_running(me)
    assert not processes.is_running(processes.ProcessId(me.pid, (me.started or 0) + 12345, me.boot))
    assert not processes.is_running(processes.ProcessId(me.pid, me.started, "another-boot"))


@pytest.mark.parametrize("holder, parent, onefile, expected", [
    (True, True, True, "running"), (True, False, True, "orphaned"), (True, False, False, "running"),
    (False, True, True, "gone"), (False, False, False, "gone"),
])
def test_the_owner_record_is_judged_gone_running_or_orphaned(holder, parent, onefile, expected):
    owner = {"process": {"pid": 10, "started": 1, "boot": ""}, "parent": {"pid": 9, "started": 1, "boot": ""},
             "onefile": onefile}
    alive = {10: holder, 9: parent}
    assert locks.judge(owner, running=lambda p: alive[p.pid]) == expected


def test_a_damaged_owner_record_counts_as_gone():
    assert locks.judge({"process": "garbage"}) == "gone" and locks.judge(None) == "gone"
