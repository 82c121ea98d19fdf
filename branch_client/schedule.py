"""The Windows scheduled tasks: `branchsync sync` every few minutes, and optionally the till at logon.

The pure part: `parse_every` turns `--every` into a duration, `task_xml` and `till_task_xml`
build the Task Scheduler definitions, and `create_command`/`query_command`/`delete_command`
give the exact `schtasks` command lines. The I/O part, at the end, runs them (`run`,
`install`, `remove`, `show`): the CLI calls it on Windows and prints the commands elsewhere.

The sync task (Task Scheduler schema 1.3, Windows 7 and later, written as UTF-16 for schtasks;
tests/branch_client validates it against the published schema, whose trigger children are an
xs:sequence: Enabled, StartBoundary, EndBoundary, Repetition, ExecutionTimeLimit, in that order):
- a TimeTrigger that starts at `start` and repeats every `--every`, indefinitely;
- StartWhenAvailable: a start missed while the PC was off runs as soon as it is back;
- MultipleInstancesPolicy IgnoreNew: a sync still running is never doubled (the sync lock
  would refuse the second one anyway);
- runs on battery and keeps running when the PC goes on battery (a till on a UPS);
- ExecutionTimeLimit PT30M: a hung sync is ended; the next repetition starts afresh;
- RestartOnFailure: if the task fails to start, try again every 5 minutes, 3 times;
- runs whether or not anyone is logged on. The default principal is the Windows account
  that installs it, with LogonType S4U ("do not store password"): the sync then runs as
  the same account the cashier records sales with, so the database, its WAL files, the
  secret and the logs keep one owner, and no password is stored or expires. S4U gives no
  network share credentials, which a sync does not need (HTTPS with its own signature).
  `--principal system` runs it as SYSTEM (S-1-5-18) instead, for a till where sales are
  recorded under several Windows accounts; then the data home must be writable by all of
  them (files SYSTEM creates under ProgramData are not writable by ordinary users).
- the action is the executable's own path with `--home <home> sync`.

The till task (`--till-at-logon`), `branchsync-till`:
- a LogonTrigger for the installing account only (its UserId), so the till opens on the
  cashier's desktop when that account logs on;
- LogonType InteractiveToken: it runs in the account's own desktop session, only while
  it is logged on (a window needs a desktop; no password is stored);
- ExecutionTimeLimit PT0S: the till runs all day, never ended by the scheduler (the
  default would stop it after 72 hours); IgnoreNew: a second logon opens no second till;
- Priority 5: Task Scheduler starts tasks at 7, "below normal", meant for background work;
  4 to 6 are its levels for interactive tasks;
- the action is `--home <home> till`.
"""

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from .errors import TaskSchedulerError

TASK_NAME = "branchsync-sync"
TILL_TASK_NAME = "branchsync-till"
TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"
# The version the published schema fixes (taskType's version attribute); every element used here exists in it.
TASK_VERSION = "1.3"
SYSTEM_SID = "S-1-5-18"
DEFAULT_EVERY = "15m"
EXECUTION_TIME_LIMIT = timedelta(minutes=30)
RESTART_INTERVAL = timedelta(minutes=5)
RESTART_COUNT = 3
SYNC_PRIORITY = 7         # Task Scheduler's default: below normal, for background work
TILL_PRIORITY = 5         # normal: one of the levels (4-6) Task Scheduler gives interactive tasks
NO_TIME_LIMIT = "PT0S"    # the task may run indefinitely
# Task Scheduler accepts repetition intervals from 1 minute to 31 days.
MIN_EVERY, MAX_EVERY = timedelta(minutes=1), timedelta(days=31)

PRINCIPAL_USER, PRINCIPAL_SYSTEM = "user", "system"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY_RE = re.compile(r"(\d+)\s*([smhd])")


def parse_every(text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `1h30m`, `1d` -> a timedelta; ValueError with a message otherwise."""
    spelled = (text or "").strip().lower()
    parts = _EVERY_RE.findall(spelled)
    if not spelled or not parts or _EVERY_RE.sub("", spelled).strip():
        raise ValueError(f"--every {text!r} is not a duration: write a number and a unit, "
                         "like 90s, 15m, 1h or 1h30m (s, m, h, d)")
    every = timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in parts))
    if not MIN_EVERY <= every <= MAX_EVERY:
        raise ValueError(f"--every {text!r} is outside what Windows Task Scheduler allows: "
                         "choose between 1m and 31d (15m is a good start)")
    return every


def iso_duration(value: timedelta) -> str:
    """A timedelta as an XML schema duration, the way Task Scheduler writes it: PT1H30M, P1D, PT90S -> PT1M30S."""
    seconds = int(value.total_seconds())
    if seconds <= 0 or seconds != value.total_seconds():
        raise ValueError("a task duration is a positive number of whole seconds")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time_part = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time_part}" if time_part else "")


def action_arguments(home: str, command: str = "sync") -> str:
    """The action's argument string, quoted by the Windows rules (a home with spaces works)."""
    return subprocess.list2cmdline(["--home", str(home), command])


def task_xml(program: str, home: str, every: timedelta, start: datetime, *,
             principal: str = PRINCIPAL_USER, user: str | None = None,
             extra_args: tuple[str, ...] = ()) -> str:
    """The Task Scheduler XML for a sync every `every` from `start` (local time, no zone).

    `program` is the executable to run (its absolute path), `extra_args` go before
    `--home` (used when the program is a Python interpreter: `-m branch_client`).
    With principal "user", `user` is the Windows account (DOMAIN\\name) it runs as.
    """
    if principal == PRINCIPAL_USER:
        if not user:
            raise ValueError("a task that runs as a user needs the account name")
        principal_xml = (f"      <UserId>{escape(user)}</UserId>\n"
                         "      <LogonType>S4U</LogonType>\n"
                         "      <RunLevel>LeastPrivilege</RunLevel>\n")
    elif principal == PRINCIPAL_SYSTEM:
        principal_xml = (f"      <UserId>{SYSTEM_SID}</UserId>\n"
                         "      <RunLevel>HighestAvailable</RunLevel>\n")
    else:
        raise ValueError(f"principal must be {PRINCIPAL_USER!r} or {PRINCIPAL_SYSTEM!r}, not {principal!r}")
    start_text = start.replace(tzinfo=None, microsecond=0).isoformat()
    trigger = f"""    <TimeTrigger>
      <Enabled>true</Enabled>
      <StartBoundary>{start_text}</StartBoundary>
      <Repetition>
        <Interval>{iso_duration(every)}</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
    </TimeTrigger>
"""
    return _task(TASK_NAME, "Syncs this branch with head office: pulls the catalog, pushes new sales (branchsync sync).",
                 trigger, principal_xml, program, _arguments(extra_args, home, "sync"),
                 start_when_available=True, time_limit=iso_duration(EXECUTION_TIME_LIMIT), priority=SYNC_PRIORITY)


def till_task_xml(program: str, home: str, *, user: str, extra_args: tuple[str, ...] = ()) -> str:
    """The Task Scheduler XML that opens the till when `user` (DOMAIN\\name) logs on, on that user's desktop."""
    if not user:
        raise ValueError("the till task needs the account whose logon opens it")
    trigger = f"""    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>{escape(user)}</UserId>
    </LogonTrigger>
"""
    principal_xml = (f"      <UserId>{escape(user)}</UserId>\n"
                     "      <LogonType>InteractiveToken</LogonType>\n"
                     "      <RunLevel>LeastPrivilege</RunLevel>\n")
    return _task(TILL_TASK_NAME, "Opens the branchsync till, the cashier's screen, when this account logs on "
                                 "(branchsync till).",
                 trigger, principal_xml, program, _arguments(extra_args, home, "till"),
                 start_when_available=False, time_limit=NO_TIME_LIMIT, priority=TILL_PRIORITY)


def _arguments(extra_args: tuple[str, ...], home: str, command: str) -> str:
    return " ".join(filter(None, [subprocess.list2cmdline(list(extra_args)), action_arguments(home, command)]))


def _task(name: str, description: str, trigger: str, principal_xml: str, program: str, arguments: str, *,
          start_when_available: bool, time_limit: str, priority: int) -> str:
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="{TASK_VERSION}" xmlns="{TASK_NS}">
  <RegistrationInfo>
    <Author>branchsync</Author>
    <Description>{escape(description)}</Description>
    <URI>\\{name}</URI>
  </RegistrationInfo>
  <Triggers>
{trigger}  </Triggers>
  <Principals>
    <Principal id="Author">
{principal_xml}    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>{str(start_when_available).lower()}</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>{time_limit}</ExecutionTimeLimit>
    <Priority>{priority}</Priority>
    <RestartOnFailure>
      <Interval>{iso_duration(RESTART_INTERVAL)}</Interval>
      <Count>{RESTART_COUNT}</Count>
    </RestartOnFailure>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(program)}</Command>
      <Arguments>{escape(arguments)}</Arguments>
    </Exec>
  </Actions>
</Task>
"""


def encode_for_schtasks(xml: str) -> bytes:
    """The bytes of the XML file schtasks reads: UTF-16 (little endian) with a byte order mark, CRLF lines."""
    return xml.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-16")


def create_command(xml_file: str, name: str = TASK_NAME) -> list[str]:
    return ["schtasks", "/Create", "/TN", name, "/XML", str(xml_file), "/F"]


def query_command(name: str = TASK_NAME) -> list[str]:
    return ["schtasks", "/Query", "/TN", name, "/XML"]


def delete_command(name: str = TASK_NAME) -> list[str]:
    return ["schtasks", "/Delete", "/TN", name, "/F"]


def next_start(now: datetime) -> datetime:
    """The first start: the next whole minute after `now` (local time, no zone)."""
    return now.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)


# --- running schtasks (I/O) ----------------------------------------------------------------------

Runner = Callable[[list[str]], subprocess.CompletedProcess]


@dataclass(frozen=True)
class Task:
    name: str
    xml: str
    what: str  # what it does, for the message that it was installed


def run(command: list[str]) -> subprocess.CompletedProcess:
    """Run one schtasks command line; TaskSchedulerError when schtasks cannot be run at all."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise TaskSchedulerError(f"cannot run schtasks ({exc.strerror or exc}); is this Windows?") from exc
    except subprocess.TimeoutExpired as exc:
        raise TaskSchedulerError("schtasks did not answer within 60 s; restart the PC and try again") from exc


def _checked(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout or "").split()) or f"exit code {proc.returncode}"
        raise TaskSchedulerError(f"{what} failed: {detail}; run branchsync from a command prompt opened "
                                 "as administrator and try again")
    return proc


def install(tasks: list[Task], runner: Runner | None = None) -> None:
    """Register each task from its XML, written as UTF-16 to a temporary file for schtasks."""
    runner = runner or run
    with tempfile.TemporaryDirectory(prefix="branchsync-task-") as folder:
        for task in tasks:
            path = Path(folder) / f"{task.name}.xml"
            path.write_bytes(encode_for_schtasks(task.xml))
            _checked(runner(create_command(str(path), task.name)), f"registering the scheduled task {task.name}")


def registered(name: str, runner: Runner | None = None) -> str | None:
    """The task's XML as Task Scheduler holds it, or None when there is no such task."""
    proc = (runner or run)(query_command(name))
    return proc.stdout if proc.returncode == 0 else None


def remove(runner: Runner | None = None) -> list[str]:
    """Delete the sync task and the till task, those that exist; returns the names removed."""
    runner = runner or run
    removed = []
    for name in (TASK_NAME, TILL_TASK_NAME):
        if registered(name, runner) is None:
            continue
        _checked(runner(delete_command(name)), f"removing the scheduled task {name}")
        removed.append(name)
    return removed


def this_program() -> tuple[str, tuple[str, ...]]:
    """What a task runs: this executable, or in a Python install the console script (or the module)."""
    if getattr(sys, "frozen", False):
        return str(Path(sys.executable).resolve()), ()
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script and script.stem == "branchsync" and script.is_file():
        return str(script.resolve()), ()
    return str(Path(sys.executable).resolve()), ("-m", "branch_client")


def windows_account(env: Mapping[str, str] = os.environ) -> str:
    """The account running this (DOMAIN\\name), the one the tasks run as."""
    user = env.get("USERNAME")
    if not user:
        import getpass

        user = getpass.getuser()
    domain = env.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain else user
