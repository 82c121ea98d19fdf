"""The Windows scheduled task that runs `branchsync sync` every few minutes.

Pure functions, no I/O: `parse_every` turns `--every` into a duration, `task_xml` builds
the Task Scheduler definition, and `create_command`/`query_command`/`delete_command` give
the exact `schtasks` command lines. The CLI runs them on Windows and prints them elsewhere.

The task (Task Scheduler schema 1.3, Windows 7 and later, written as UTF-16 for schtasks;
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
"""

import re
import subprocess
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

TASK_NAME = "branchsync-sync"
TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"
# The version the published schema fixes (taskType's version attribute); every element used here exists in it.
TASK_VERSION = "1.3"
SYSTEM_SID = "S-1-5-18"
DEFAULT_EVERY = "15m"
EXECUTION_TIME_LIMIT = timedelta(minutes=30)
RESTART_INTERVAL = timedelta(minutes=5)
RESTART_COUNT = 3
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


def action_arguments(home: str) -> str:
    """The action's argument string, quoted by the Windows rules (a home with spaces works)."""
    return subprocess.list2cmdline(["--home", str(home), "sync"])


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
    arguments = " ".join(filter(None, [subprocess.list2cmdline(list(extra_args)), action_arguments(home)]))
    start_text = start.replace(tzinfo=None, microsecond=0).isoformat()
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="{TASK_VERSION}" xmlns="{TASK_NS}">
  <RegistrationInfo>
    <Author>branchsync</Author>
    <Description>Syncs this branch with head office: pulls the catalog, pushes new sales (branchsync sync).</Description>
    <URI>\\{TASK_NAME}</URI>
  </RegistrationInfo>
  <Triggers>
    <TimeTrigger>
      <Enabled>true</Enabled>
      <StartBoundary>{start_text}</StartBoundary>
      <Repetition>
        <Interval>{iso_duration(every)}</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
{principal_xml}    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
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
    <ExecutionTimeLimit>{iso_duration(EXECUTION_TIME_LIMIT)}</ExecutionTimeLimit>
    <Priority>7</Priority>
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
