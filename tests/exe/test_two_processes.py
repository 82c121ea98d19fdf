"""The BUILT one-file executable: its Python process ends with the bootloader, and leaves nothing behind.

A sync is held up by a cloud that accepts the connection and never answers; then only the
bootloader (the process started here) is killed, as Task Scheduler's time limit may do.
Its Python child must end too (it would otherwise hold sync.lock): on Linux through
PR_SET_PDEATHSIG, on Windows through the job object whose only handle the bootloader held.
The next run of the executable removes the unpack folder the killed bootloader could not delete.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from branch_client import processes
from branch_client.identity import Identity
from branch_client.lock import SyncLock
from branch_client.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(not (sys.platform.startswith("linux") or sys.platform == "win32"),
                                 reason="finds the child through /proc or Win32_Process")]


@pytest.fixture
def silent_cloud():
    """A TCP server on loopback that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def children(pid: int) -> list[int]:
    if sys.platform == "win32":  # pragma: no cover - the Windows runner
        proc = subprocess.run(["powershell", "-NoProfile", "-Command",
                               f"Get-CimInstance Win32_Process -Filter 'ParentProcessId={pid}' | "
                               "Select-Object -ExpandProperty ProcessId"], capture_output=True, text=True)
        return [int(line) for line in proc.stdout.split() if line.strip().isdigit()]
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_until(condition, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_killing_only_the_bootloader_ends_the_python_process_and_frees_the_lock(exe, silent_cloud, tmp_path):
    home, temp = tmp_path / "till", tmp_path / "temp"
    temp.mkdir()
    with Store(home) as store:
        store.save_identity(Identity("dhaka-1", silent_cloud, "k" * 43))
    # The bootloader unpacks into TMPDIR (POSIX) or TMP/TEMP (Windows, GetTempPathW).
    env = {**{k: v for k, v in os.environ.items() if k != "BRANCHSYNC_HOME"},
           "TMPDIR": str(temp), "TMP": str(temp), "TEMP": str(temp)}

    bootloader = subprocess.Popen([str(exe), "--home", str(home), "sync"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: children(bootloader.pid) and (home / "sync.lock.owner").exists(), what="the sync")
        child = processes.identify(children(bootloader.pid)[0])
        unpacked = list(temp.glob("_MEI*"))
        assert len(unpacked) == 1

        bootloader.kill()  # SIGKILL / TerminateProcess: it can forward nothing, nor delete its folder
        bootloader.wait()
        wait_until(lambda: not processes.is_running(child), timeout=30, what="the orphaned child to end")
    finally:
        if bootloader.poll() is None:
            bootloader.kill()
        for pid in children(bootloader.pid):
            os.kill(pid, signal.SIGTERM)

    with SyncLock(home):  # free: nobody holds it any more
        pass
    assert unpacked[0].exists()  # left behind by the killed bootloader...
    proc = subprocess.run([str(exe), "--home", str(home), "status", "--json"], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert list(temp.glob("_MEI*")) == []  # ...and removed by the next run, which also removed its own
