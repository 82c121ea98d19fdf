"""Start and stop the local stand-ins for Azure: Azurite and the dev host.

Used by the tests, `make demo` and `make bench`, so that all of them run the
same real processes on loopback ports chosen by the OS.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Azurite's well-known development account (public, documented, emulator only).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("azurite is not installed: run `npm ci` in the project folder (make does this)")
    return found


@dataclass
class Azurite:
    process: subprocess.Popen
    queue_port: int
    table_port: int
    blob_port: int
    log: Path

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{DEV_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{DEV_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{DEV_ACCOUNT};"
        )

    def stop(self) -> None:
        _stop(self.process)


def start_azurite(workdir: Path, ports: tuple[int, int, int] | None = None, location: Path | None = None) -> Azurite:
    """Azurite on loopback; ports are chosen by the OS unless given (to restart on the same ones).

    In memory unless `location` is given: then its data is kept on disk in that folder, so
    Azurite stopped and started again with the same `location` keeps its queues and tables.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "azurite.log"
    blob, queue, table = ports or (0, 0, 0)
    if location is not None:
        location.mkdir(parents=True, exist_ok=True)
        persistence = ["--location", str(location)]
    else:
        persistence = ["--inMemoryPersistence"]
    cmd = [
        azurite_binary(), *persistence, "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
        "--blobPort", str(blob), "--queuePort", str(queue), "--tablePort", str(table),
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    found: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while len(found) < 3:
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"Azurite did not start; see {log}:\n{log.read_text()[-2000:]}")
        for kind, port in re.findall(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[\d.]+:(\d+)", log.read_text()):
            found[kind] = int(port)
        time.sleep(0.1)
    return Azurite(proc, found["Queue"], found["Table"], found["Blob"], log)


@dataclass
class Cloud:
    process: subprocess.Popen
    port: int
    log: Path
    env: dict = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        _stop(self.process)


# App settings the functions' behaviour depends on, taken as local.settings.example.json sets them
# (infra/modules/function.bicep on Azure): the timers' schedules and the worker's thread count.
LOCAL_SETTINGS = ("CATALOG_COMPACT_SCHEDULE", "LAKE_WRITE_SCHEDULE", "PYTHON_THREADPOOL_THREAD_COUNT")


def local_settings() -> dict[str, str]:
    values = json.loads((ROOT / "function_app" / "local.settings.example.json").read_text(encoding="utf-8"))["Values"]
    return {name: values[name] for name in LOCAL_SETTINGS}


def start_cloud(workdir: Path, connection_string: str, admin_key: str, port: int | None = None,
                extra_env: dict | None = None) -> Cloud:
    """The dev host (`branchsync-cloud`) as a process, waiting until it answers /api/health."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = workdir / f"cloud-{port}.log"
    env = {**local_settings(), **os.environ, "AzureWebJobsStorage": connection_string, "BRANCHSYNC_ADMIN_KEY": admin_key,
           **(extra_env or {})}
    exe = Path(sys.executable).parent / "branchsync-cloud"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "headoffice.devhost"]
    with open(log, "a") as out:
        proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=workdir, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"the cloud dev host did not start; see {log}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return Cloud(proc, port, log, env)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
