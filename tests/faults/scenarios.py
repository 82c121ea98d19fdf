"""The fault scenarios, each a seeded, repeatable set of trials against the real processes."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from azure.storage.queue import QueueClient
from sqlalchemy import event

from branch_client.cloud_client import CloudClient
from branch_client.sale_entry import parse_items
from branch_client.store import Store
from headoffice.stand_ins import ROOT, start_azurite
from shared.encoding import Frame, pack_sales, to_queue_text
from shared.models import Product
from shared.money import format_taka, line_total
from shared.signing import mac, new_secret

from .harness import (
    Branch, Scenario, Stack, TrialResult, cli, count_in_log, new_branch, random_items, reconcile, reported_seq,
    wait_applied,
)
from .netcut import Cut, NetCut

SALES_QUEUE = "sales"


def seed_sales(branch: Branch, n: int, rng: random.Random, when: datetime | None = None) -> int:
    """Record n sales in-process through the branch's own Store (fast); returns the last number.

    They are the scenario's set-up, not under test: their commits do not wait for the disk
    (synchronous=OFF on this process's connections only; the CLI processes keep FULL).
    """
    with Store(branch.home) as store:
        event.listen(store.engine, "checkout", lambda dbapi, _record, _proxy: dbapi.execute("PRAGMA synchronous = OFF"))
        last = 0
        for i in range(n):
            at = None if when is None else when + timedelta(seconds=30 * i)
            last = store.record_sale(parse_items(random_items(rng)), rng.choice(["cash", "card", "bkash:9C7D2XK41Q"]), now=at).seq
    return last


# --- 1. network cut during a pull ------------------------------------------------------------


class PullCut(Scenario):
    """A proxy between branch and cloud cuts catalog pulls at a page boundary or mid-page."""

    name, number, trials = "pull-cut", 1, 8
    # seed 100: the answer to page 1 lost after the server did the work, 4 times (the sync fails);
    # 101: page 3 cut mid-page twice (the retries get it)
    quick_seeds = (100, 101)
    # Several pages of 10,000 (a branch's wide pages), on storage of its own so that no other
    # scenario's branch pulls this larger catalog.
    CATALOG = 25_000

    def __init__(self):
        self._setup: tuple[NetCut, object, Stack] | None = None

    def _env(self, stack: Stack):
        if self._setup is None:
            azurite = stack.own_azurite("azurite-pullcut")
            proxy, cloud = proxied_cloud(stack, "cloud-pullcut", storage=azurite.connection_string)
            own = Stack(azurite, cloud, stack.admin_key, stack.workdir)
            own.ensure_catalog(size=self.CATALOG)
            self._setup = proxy, cloud, own
        return self._setup

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        proxy, cloud, stack = self._env(stack)
        proxy.clear()
        branch = new_branch(stack, f"pull{seed}", url=cloud.url, catalog=False)
        page = rng.randint(0, 2)                       # which page of the pull is cut
        times = rng.choice([1, 2, 3, 4])               # 3+ outlast the client's retries: the sync fails
        where = rng.choice(["boundary-before", "boundary-after", "mid-page"])
        response_bytes = {"boundary-before": None, "boundary-after": 0}.get(where, rng.randint(100, 100_000))
        rule = proxy.add(Cut(match=lambda m, p: m == "GET" and p.startswith("/api/pull"), skip=page, times=times,
                             response_bytes=response_bytes))
        first = branch.run("sync", check=False)
        proxy.clear()
        problems = []
        if first.returncode not in (0, 1):
            problems.append(f"cut sync exited {first.returncode}: {first.stderr.strip()[-300:]}")
        # Sales recorded after an interrupted pull still sell from the (partial) catalog or fail cleanly.
        reported = []
        for _ in range(2):
            out = branch.run("sale", "add", *random_items(rng), check=False)
            if out.returncode == 0:
                reported.append(reported_seq(out.stdout))
        branch.run("sync")
        problems += compare_catalog(branch, cloud.url)
        result = reconcile(stack, branch, reported=reported, faults=rule.fired)
        result.problems = problems + result.problems
        return result


def proxied_cloud(stack: Stack, name: str, storage: str | None = None):
    """A dedicated dev host behind a NetCut proxy; its enrollment codes point at the proxy, so its
    branches reach it only through the proxy (the queue they push to is Azurite's, directly)."""
    from headoffice.stand_ins import free_port
    proxy = NetCut(free_port())
    stack.extra.append(proxy)
    cloud = stack.own_cloud(name, storage=storage, extra_env={"BRANCHSYNC_PUBLIC_URL": proxy.url})
    proxy.target = ("127.0.0.1", cloud.port)
    return proxy, cloud


def compare_catalog(branch: Branch, url: str) -> list[str]:
    """The branch's products and cursor against a full pull straight from the cloud."""
    with Store(branch.home) as store:
        identity = store.identity()
    cloud: dict[str, tuple] = {}
    cursor = 0
    with CloudClient(url, identity.branch, identity.secret) as client:
        while True:
            answer = client.pull(cursor)
            for e in answer.catalog.entries:
                if e.deleted:
                    cloud.pop(e.sku, None)
                else:
                    p = e.product
                    cloud[e.sku] = (p.name, p.price, p.barcode, p.unit, str(p.vat_rate), int(p.active))
            cursor = answer.catalog.next_cursor
            if not answer.catalog.more:
                break
    conn = sqlite3.connect(f"file:{branch.home / 'branchsync.db'}?mode=ro", uri=True, timeout=30)
    try:
        local = {r[0]: tuple(r[1:]) for r in conn.execute(
            "SELECT sku, name, price, barcode, unit, vat_rate, active FROM products")}
        local_cursor = conn.execute("SELECT catalog_cursor FROM sync_state").fetchone()[0]
    finally:
        conn.close()
    problems = []
    if local != cloud:
        missing = sorted(set(cloud) - set(local))
        extra = sorted(set(local) - set(cloud))
        differ = sorted(k for k in set(cloud) & set(local) if cloud[k] != local[k])
        problems.append(f"catalog differs: {len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}, "
                        f"{len(differ)} different {differ[:5]}")
    if local_cursor != cursor:
        problems.append(f"branch catalog cursor {local_cursor}, the cloud's is {cursor}")
    return problems


# --- 2. network cut during a push --------------------------------------------------------------


def _is_message_post(method: str, path: str) -> bool:
    return method == "POST" and f"/{SALES_QUEUE}/messages" in path.split("?")[0]


class PushCut(Scenario):
    """A proxy in front of the queue cuts the push after k of n messages (before or after the queue took it)."""

    name, number, trials = "push-cut", 2, 8
    # seed 100: the queue took the message, its answer lost, 3 times (the sync fails); 102: a
    # message cut before the queue took it, once (the retry sends it)
    quick_seeds = (100, 102)

    def __init__(self):
        self._setup = None

    def _env(self, stack: Stack):
        if self._setup is None:
            proxy = NetCut(stack.azurite.queue_port)
            stack.extra.append(proxy)
            storage = stack.storage.replace(f"QueueEndpoint=http://127.0.0.1:{stack.azurite.queue_port}/",
                                            f"QueueEndpoint={proxy.url}/")
            cloud = stack.own_cloud("cloud-pushcut", storage=storage)
            self._setup = (proxy, cloud)
        return self._setup

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        proxy, cloud = self._env(stack)
        proxy.clear()
        branch = new_branch(stack, f"push{seed}", url=cloud.url)
        seed_sales(branch, rng.randint(2_600, 4_200), rng)          # several queue messages
        reported = branch.add_sales(2, rng)
        k = rng.randint(0, 2)
        times = rng.choice([1, 2, 3, 4])
        before = rng.random() < 0.5                                   # else: taken, but the answer is lost
        rule = proxy.add(Cut(match=_is_message_post, skip=k, times=times, response_bytes=None if before else 0))
        first = branch.run("sync", check=False)
        proxy.clear()
        problems = [] if first.returncode in (0, 1) else [f"cut sync exited {first.returncode}: {first.stderr[-300:]}"]
        result = reconcile(stack, branch, reported=reported, faults=rule.fired)
        result.problems = problems + result.problems
        return result


# --- 3. the branch process killed ---------------------------------------------------------------


def kill_at(argv: list[str], env: dict, delay: float) -> tuple[subprocess.CompletedProcess, bool]:
    proc = subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), proc.returncode == -signal.SIGKILL


def check_clean(branch: Branch, reported: list[int]) -> list[str]:
    """After a kill: the database opens and is intact, numbers are gap-free, reported sales exist."""
    problems = []
    status = branch.run("status", "--json", check=False)
    if status.returncode != 0:
        problems.append(f"status after a kill exited {status.returncode}: {status.stderr.strip()[-300:]}")
    conn = sqlite3.connect(f"file:{branch.home / 'branchsync.db'}?mode=ro", uri=True, timeout=30)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        seqs = [r[0] for r in conn.execute("SELECT seq FROM sales ORDER BY seq")]
    finally:
        conn.close()
    if ok != "ok":
        problems.append(f"integrity_check: {ok}")
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"sale numbers have gaps after a kill: {seqs[-10:]}")
    gone = sorted(set(reported) - set(seqs))
    if gone:
        problems.append(f"reported sales missing after a kill: {gone}")
    return problems


class Kill(Scenario):
    """SIGKILL at a seeded random moment inside `sale add` or `sync`, then started again."""

    group = 10  # kills per branch between reconciliations

    def __init__(self, target: str, trials: int = 50, quick_seeds: tuple[int, ...] = (100, 101, 102)):
        self.target = target
        self.name = f"kill-{target}"
        self.number = 3
        self.trials, self.quick_seeds = trials, quick_seeds

    def run_many(self, stack: Stack, seeds: list[int]) -> TrialResult:
        total = TrialResult()
        for i in range(0, len(seeds), self.group):
            total += self._group(stack, seeds[i:i + self.group])
        return total

    def run(self, stack: Stack, seed: int) -> TrialResult:
        return self._group(stack, [seed])

    def _group(self, stack: Stack, seeds: list[int]) -> TrialResult:
        branch = new_branch(stack, f"kill{self.target[:4]}{seeds[0]}")
        reported: list[int] = []
        problems: list[str] = []
        kills = 0
        # Calibrate: how long one unkilled run takes here, so the kills spread over the whole run.
        t0 = time.monotonic()
        if self.target == "sale-add":
            reported += branch.add_sales(1, random.Random(seeds[0]))
        else:
            seed_sales(branch, 600, random.Random(seeds[0]))
            t0 = time.monotonic()
            branch.run("sync")
        span = time.monotonic() - t0
        for seed in seeds:
            rng = random.Random(seed)
            if self.target == "sale-add":
                argv = branch.argv("sale", "add", *random_items(rng), "--payment", "cash")
                delay = rng.uniform(0.02, span * 1.05)
            else:
                reported += branch.add_sales(rng.randint(1, 3), rng)
                if rng.random() < 0.2:
                    seed_sales(branch, rng.randint(300, 1_500), rng)  # a longer push, sometimes of two messages
                argv = branch.argv("sync")
                delay = rng.uniform(0.02, span * 1.05)
            done, killed = kill_at(argv, branch.env, delay)
            kills += killed
            if not killed and done.returncode != 0:
                problems.append(f"{self.target} exited {done.returncode} without a kill: {done.stderr.strip()[-200:]}")
            if self.target == "sale-add" and (seq := reported_seq(done.stdout)) is not None:
                reported.append(seq)
            problems += check_clean(branch, reported)
        result = reconcile(stack, branch, reported=reported, faults=kills)
        result.problems = problems + result.problems
        return result


# --- 4. queue messages delivered twice and out of order -------------------------------------------


class Redeliver(Scenario):
    """The messages of a push delivered twice (or three times) and in reverse or shuffled order."""

    name, number, trials = "redeliver", 4, 6
    # reversed (even seed), shuffled (odd)
    quick_seeds = (100, 101)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"redeliver{seed}")
        seed_sales(branch, rng.randint(60, 200), rng)
        _, _, good = packed_push(branch, budget=rng.randint(1_500, 4_000))
        order = list(reversed(good)) if seed % 2 == 0 else rng.sample(good, len(good))
        copies = [t for t in good for _ in range(rng.choice([1, 2]))]     # second (and third) deliveries
        sent = [*order, *rng.sample(copies, len(copies))]
        deliver(stack, sent)
        faults = (len(sent) - len(good)) + 1                               # extra deliveries + the reordering
        return reconcile(stack, branch, faults=faults)


# --- 5. the queue function failing half way ------------------------------------------------------


class ApplyFails(Scenario):
    """A cloud whose apply raises before the commit, after it, or between its transactions; the queue retries."""

    name, number, trials = "apply-fails", 5, 4
    quick_seeds = (100,)
    SPEC = "apply.before_commit=raise:0.5:2,apply.after_commit=raise:0.6:2,apply.between_transactions=raise:0.5:1"

    def __init__(self):
        self._azurite = None

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        if self._azurite is None:  # its own storage: no other dev host takes these messages first
            self._azurite = stack.own_azurite("azurite-applyfails")
        cloud = stack.own_cloud(f"cloud-applyfails-{seed}", storage=self._azurite.connection_string,
                                extra_env={"BRANCHSYNC_FAILPOINTS": self.SPEC, "BRANCHSYNC_FAILPOINTS_SEED": str(seed)})
        own = Stack(self._azurite, cloud, stack.admin_key, stack.workdir)
        try:
            own.ensure_catalog()
            branch = new_branch(own, f"apply{seed}")
            for _ in range(3):
                seed_sales(branch, rng.randint(5, 60), rng)
                branch.run("sync")
            result = reconcile(own, branch, apply_timeout=120)
            result.faults_injected = count_in_log(cloud.log, "failpoint fired")
            return result
        finally:
            cloud.stop()


# --- 6. Azurite restarted while the dev host applies --------------------------------------------


class AzuriteRestart(Scenario):
    """Azurite (on disk) stopped and started again on the same ports while the dev host applies a backlog.

    The dedicated dev host reaches the queue through a proxy that first holds its receives back, so
    the branch's whole push waits on the queue; then the receives are let through and Azurite is
    stopped a seeded moment after the dev host has taken its first batch (while it applies it).
    """

    name, number, trials = "azurite-restart", 6, 3
    quick_seeds = (100,)

    def __init__(self, sales: tuple[int, int] = (3_000, 6_000), quick_sales: tuple[int, int] = (2_000, 3_000)):
        self.sales, self.quick_sales = sales, quick_sales
        self.quick = False

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        lo, hi = self.quick_sales if self.quick else self.sales
        n = rng.randint(lo, hi)
        after_receive = rng.uniform(0.0, 0.15)  # seconds after the first batch is taken
        down = rng.uniform(2.0, 5.0)            # seconds Azurite stays down
        workdir = stack.workdir / f"azurite-restart-{seed}"
        data = workdir / "data"
        az = start_azurite(workdir / "azurite", location=data)
        holder = _Stopper(az)
        stack.extra.append(holder)
        proxy = NetCut(az.queue_port)
        stack.extra.append(proxy)
        proxy.add(Cut(match=_is_receive, times=10**9))  # hold the dev host's receives back
        storage = az.connection_string.replace(f"QueueEndpoint=http://127.0.0.1:{az.queue_port}/",
                                               f"QueueEndpoint={proxy.url}/")
        cloud = stack.own_cloud(f"cloud-azrestart-{seed}", storage=storage)
        own = Stack(az, cloud, stack.admin_key, stack.workdir)
        problems: list[str] = []
        try:
            own.ensure_catalog()
            branch = new_branch(own, f"azr{seed}")
            last = seed_sales(branch, n, rng)
            branch.run("sync", timeout=600)  # the push: every message is on the queue now
            if _applied(own, branch.name) != 0:
                problems.append("sales were applied while the dev host's receives were held back")
            taken = threading.Event()
            proxy.clear()
            proxy.add(Cut(match=lambda m, p: _is_receive(m, p) and (taken.set() or False), times=0))
            if not taken.wait(30):
                problems.append("the dev host did not receive from the queue within 30 s")
            time.sleep(after_receive)
            at_stop = _applied(own, branch.name)
            ports = (az.blob_port, az.queue_port, az.table_port)
            az.stop()
            time.sleep(down)
            az = start_azurite(workdir / "azurite-again", ports=ports, location=data)
            holder.azurite = own.azurite = az
            if at_stop >= last:
                problems.append(f"the apply had finished (applied through {at_stop} of {last}) before Azurite "
                                "stopped: the restart hit no apply")
            result = reconcile(own, branch, faults=1, apply_timeout=240)
            result.problems = problems + result.problems
            return result
        finally:
            cloud.stop()
            proxy.stop()
            holder.stop()


def _is_receive(method: str, path: str) -> bool:
    """The dev host's receive from the `sales` queue (not a peek, not the poison queue)."""
    return method == "GET" and "/sales/messages" in path and "peekonly" not in path


def _applied(stack: Stack, branch: str) -> int:
    with stack.admin() as a:
        mine = next((b for b in a.branches().branches if b.branch == branch), None)
    return mine.applied_through if mine else 0


class _Stopper:
    """Stops whichever Azurite process is the current one (the restart replaces it)."""

    def __init__(self, azurite):
        self.azurite = azurite

    def stop(self) -> None:
        self.azurite.stop()


# --- 7. branch clock a day ahead, then a day behind ------------------------------------------------


class ClockSkew(Scenario):
    """The branch's clock a day ahead, then a day behind the cloud: sales recorded, sync refused, nothing lost."""

    name, number, trials = "clock-skew", 7, 3
    quick_seeds = (100,)
    DAY = 86_400

    def _skewed(self, branch: Branch, offset: float, *args, timeout: float = 180) -> subprocess.CompletedProcess:
        env = {**branch.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), branch.env.get("PYTHONPATH")]))}
        return subprocess.run([sys.executable, "-m", "tests.faults.skewed_clock", str(offset), "--home",
                               str(branch.home), *map(str, args)], env=env, cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"skew{seed}")
        reported: list[int] = []
        problems: list[str] = []
        faults = 0
        for direction in (+1, -1):  # a day ahead, then a day behind
            offset = direction * (self.DAY + rng.randint(0, 3_600))
            where = "ahead" if direction > 0 else "behind"
            for _ in range(rng.randint(2, 5)):
                out = self._skewed(branch, offset, "sale", "add", *random_items(rng), "--payment",
                                   rng.choice(["cash", "card", "bkash:9C7D2XK41Q"]))
                if out.returncode != 0:
                    problems.append(f"sale add with the clock a day {where} exited {out.returncode}: "
                                    f"{out.stderr.strip()[-200:]}")
                else:
                    reported.append(reported_seq(out.stdout))
            before = branch.status()
            out = self._skewed(branch, offset, "sync")
            faults += 1
            lines = [line for line in out.stderr.splitlines() if line.strip()]
            if out.returncode == 0:
                problems.append(f"sync with the clock a day {where} succeeded; the cloud should refuse it")
            elif len(lines) != 1 or "clock" not in lines[0].lower():
                problems.append(f"sync with the clock a day {where} exited {out.returncode} without a one-line "
                                f"reason naming the clock: {out.stderr.strip()[-300:]!r}")
            after = branch.status()
            if after["pending"] != before["pending"]:
                problems.append(f"pending went from {before['pending']} to {after['pending']} over a refused sync")
            if "clock" not in (after["last_error"] or "").lower():
                problems.append(f"last_error does not name the clock: {after['last_error']!r}")
            doctor = self._skewed(branch, offset, "doctor")
            said = (doctor.stdout + doctor.stderr).lower()
            if "clock" not in said or "set this pc's date, time" not in said:
                problems.append(f"doctor with the clock a day {where} does not tell to fix the clock: "
                                f"{(doctor.stdout + doctor.stderr).strip()[-400:]!r}")
            if doctor.returncode == 0:
                problems.append("doctor exited 0 with the clock a day off")
        problems += _recorded_as_recorded(branch, stack, reported)
        result = reconcile(stack, branch, reported=reported, faults=faults)  # the clock fixed: no offset
        problems += _cloud_keeps_recorded_at(branch, result.exported, reported)
        result.problems = problems + result.problems
        return result


def _recorded_as_recorded(branch: Branch, stack: Stack, seqs: list[int]) -> list[str]:
    """Sales recorded with a skewed clock keep their recorded_at (a day off) at the branch."""
    conn = sqlite3.connect(f"file:{branch.home / 'branchsync.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = {seq: at for seq, at in conn.execute("SELECT seq, recorded_at FROM sales")}
    finally:
        conn.close()
    now = datetime.now(timezone.utc)
    off = []
    for seq in seqs:
        at = datetime.fromisoformat(str(rows.get(seq)).replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        if abs((at - now).total_seconds()) < 20 * 3_600:
            off.append(seq)
    return [f"sales {off} were not recorded with the skewed clock"] if off else []


def _cloud_keeps_recorded_at(branch: Branch, exported: list[dict], seqs: list[int]) -> list[str]:
    """The cloud's export (reconcile's) carries the recorded_at the branch recorded (a day off), not the apply time."""
    conn = sqlite3.connect(f"file:{branch.home / 'branchsync.db'}?mode=ro", uri=True, timeout=30)
    try:
        local = {seq: _utc(at) for seq, at in conn.execute("SELECT seq, recorded_at FROM sales")}
    finally:
        conn.close()
    cloud = {e["sale"]["seq"]: _utc(e["sale"]["recorded_at"]) for e in exported}
    differ = [seq for seq in seqs if cloud.get(seq) != local.get(seq)]
    return [f"the cloud's recorded_at differs from the branch's for sales {differ[:10]}"] if differ else []


def _utc(text) -> datetime:
    at = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


# --- 8. concurrency on one branch ----------------------------------------------------------------


class Concurrent(Scenario):
    """Two syncs started at the same moment, and sales added while a sync runs."""

    name, number, trials = "concurrent", 8, 6
    # every trial provokes both: two syncs at one moment, sale add during them
    quick_seeds = (100,)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"conc{seed}")
        seed_sales(branch, rng.randint(200, 2_000), rng)
        problems, reported, faults = [], [], 0
        go = threading.Barrier(2)
        codes: list[int] = []

        def one_sync():
            go.wait()
            codes.append(branch.run("sync", check=False).returncode)

        threads = [threading.Thread(target=one_sync) for _ in range(2)]
        for t in threads:
            t.start()
        # sale add while the syncs run
        for _ in range(rng.randint(2, 4)):
            out = branch.run("sale", "add", *random_items(rng), check=False)
            if out.returncode != 0:
                problems.append(f"sale add during a sync exited {out.returncode}: {out.stderr.strip()[-200:]}")
            else:
                reported.append(reported_seq(out.stdout))
                faults += 1
        for t in threads:
            t.join(timeout=180)
        if sorted(codes) not in ([0, 0], [0, 4]):
            problems.append(f"two simultaneous syncs exited {codes}; expected one 0 and the other 0 or 4")
        faults += 1
        result = reconcile(stack, branch, reported=reported, faults=faults)
        result.problems = problems + result.problems
        return result


# --- 9. a week offline --------------------------------------------------------------------------


class OfflineWeek(Scenario):
    """A branch offline for a week comes back with a large backlog."""

    name, number, trials = "offline-week", 9, 1
    quick_seeds = (100,)

    def __init__(self, sales: int = 20_000, quick_sales: int = 2_000):
        self.sales, self.quick_sales = sales, quick_sales
        self.quick = False

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"week{seed}")
        n = self.quick_sales if self.quick else self.sales
        week_ago = datetime.now(timezone.utc) - timedelta(days=7)
        seed_sales(branch, n, rng, when=week_ago)
        reported = branch.add_sales(2, rng)
        branch.run("sync", timeout=600)
        return reconcile(stack, branch, reported=reported, faults=1, apply_timeout=300)


# --- 10. dead letters between good messages ---------------------------------------------------------


class DeadLetters(Scenario):
    """Forged, malformed and oversized messages of the branch between its good ones."""

    name, number, trials = "dead-letters", 10, 3
    quick_seeds = (100,)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"dead{seed}")
        seed_sales(branch, rng.randint(40, 120), rng)
        identity, sales, good = packed_push(branch, budget=2_000)
        forged = pack_sales(identity.branch, sales[:5], new_secret(), datetime.now(timezone.utc))[0][1]
        bad = [forged, _signed(identity.branch, identity.secret, b'{"v": 1, "this is": not json'),
               _signed(identity.branch, identity.secret, b"[" + b"0," * 2_600_000 + b"0]")]
        stream = list(good)
        for letter in bad:
            stream.insert(rng.randint(0, len(stream)), letter)
        deliver(stack, stream)
        # Every good message is applied even with the bad ones in between: wait, then let the branch finish.
        return reconcile(stack, branch, dead_letters=len(bad), faults=len(bad))


def packed_push(branch: Branch, budget: int):
    """The branch's unpushed sales packed as its own push would, for the test to deliver itself."""
    with Store(branch.home) as store:
        identity = store.identity()
        sales = store.sales_to_push(datetime.now(timezone.utc))
    texts = [text for _, text in pack_sales(identity.branch, sales, identity.secret, datetime.now(timezone.utc),
                                             budget=budget)]
    return identity, sales, texts


def deliver(stack: Stack, texts: list[str]) -> None:
    """Put messages on the sales queue in the given order, as a faulty delivery would."""
    q = QueueClient.from_connection_string(stack.storage, SALES_QUEUE)
    try:
        for text in texts:
            q.send_message(text)
    finally:
        q.close()


def _signed(branch: str, secret: str, json_bytes: bytes) -> str:
    """A message with a valid frame and signature around any JSON (zlib-compressed)."""
    compressed = zlib.compress(json_bytes, 9)
    head = Frame(branch, b"", compressed).signed_part()
    return to_queue_text(head + mac(secret, head + compressed) + compressed)


# --- 11. a cloned till ----------------------------------------------------------------------------


class ClonedTill(Scenario):
    """The branch's data directory (database and secret) copied to a second PC at a seeded point.

    Both PCs sell under the same numbers; the real till syncs first, then the copy. The copy's
    push must be dead-lettered as cloned_till and none of its sales counted, its next sync must
    tell it so, and the real till, selling on, must reconcile exactly.
    """

    name, number, trials = "cloned-till", 11, 8
    # the copy made after the real till synced (seed 100), before it did (114)
    quick_seeds = (100, 114)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        real = new_branch(stack, f"clone{seed}")
        reported = real.add_sales(rng.randint(0, 3), rng)     # the copy takes these along
        if rng.random() < 0.5:
            real.run("sync")                                    # ... pushed and acknowledged, or not yet
        copy = copy_till(real, real.home.with_name(real.name + "-copy"))
        reported += real.add_sales(rng.randint(1, 4), rng)
        copied = {i for _, i, _ in copy.local_sales()}
        copy.add_sales(rng.randint(1, 4), rng)                  # other sales under the same numbers
        own = [(seq, i) for seq, i, _ in copy.local_sales() if i not in copied]
        problems: list[str] = []
        real.run("sync")
        last = max(reported)
        if wait_applied(stack, real.name, last) < last:
            problems.append(f"the real till's sales up to {last} were not applied before the copy synced")
        copy.run("sync")
        letters = _wait_dead_letters(stack, real.name, 1)
        if [d.code for d in letters] != ["cloned_till"]:
            problems.append(f"the copy's push was not dead-lettered as cloned_till: {[d.code for d in letters]}")
        copy.run("sync")                                        # its pull brings the refusal home
        refusal = copy.status()["last_refusal"] or {}
        told = (refusal.get("code"), refusal.get("this_till"), refusal.get("seq")) == ("cloned_till", True, own[0][0])
        if not told or "refused sales from this till" not in refusal.get("says", ""):
            problems.append(f"the copy's status does not say its sale {own[0][0]} was refused: {refusal}")
        reported += real.add_sales(rng.randint(0, 3), rng)     # the real till sells on
        result = reconcile(stack, real, reported=reported, dead_letters=1, faults=1)
        exported = {e["sale"]["sale_id"] for e in result.exported}
        counted = [seq for seq, i in own if i in exported]
        if counted:
            result.sales_duplicated += len(counted)
            problems.append(f"the copy's sales {counted} were counted by the cloud")
        if (real.status()["last_refusal"] or {}).get("this_till") is not False:
            problems.append("the real till's status does not say the refused sale was another PC's")
        result.problems = problems + result.problems
        return result


def copy_till(branch: Branch, home) -> Branch:
    """The data directory copied to another "PC": same database, same secret, same branch."""
    import shutil
    shutil.copytree(branch.home, home, ignore=shutil.ignore_patterns("*.lock", "logs", "backups"))
    return Branch(branch.name, home, branch.env)


def _wait_dead_letters(stack: Stack, branch: str, n: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    with stack.admin() as a:
        while True:
            letters = [d for d in a.dead_letters().dead_letters if d.branch == branch]
            if len(letters) >= n or time.monotonic() > deadline:
                return letters
            time.sleep(0.25)


# --- 12. a product deleted and a price changed while the branch was offline -------------------------


class CatalogChangedOffline(Scenario):
    """While the branch is offline (every request to its cloud cut) it sells; head office deletes one
    sold product and reprices another. The sales must be applied exactly as sold, and the
    price-difference report must list exactly the lines of those two products."""

    name, number, trials = "catalog-changed-offline", 12, 8
    # every trial provokes both changes (a sold product deleted, another repriced: down at seed 100)
    quick_seeds = (100,)
    PRODUCTS = 6

    def __init__(self):
        self._setup = None

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        if self._setup is None:
            self._setup = proxied_cloud(stack, "cloud-offline-catalog")
        proxy, cloud = self._setup
        proxy.clear()
        tag = f"OFF{seed}-{uuid.uuid4().hex[:6]}"
        products = [Product(sku=f"{tag}-{i}", name=f"পণ্য {tag} {i}", price=rng.randint(500, 90_000),
                            unit="kg" if i % 2 else "pcs") for i in range(self.PRODUCTS)]
        with stack.admin() as a:
            a.import_products(products)
        branch = new_branch(stack, f"offcat{seed}", url=cloud.url)
        gone, repriced = rng.sample(products, 2)
        new_price = repriced.price + rng.choice([-1, 1]) * rng.randint(1, repriced.price // 2)

        offline = proxy.add(Cut(match=lambda m, p: True, times=10**9))  # the line is down
        reported = []
        for n in range(rng.randint(3, 8)):
            chosen = rng.sample(products, rng.randint(1, 3)) if n else [gone, repriced]
            items = [f"{p.sku}={rng.randint(1, 4) if p.unit == 'pcs' else f'{rng.randint(1, 3000) / 1000:.3f}'}"
                     for p in chosen]
            reported.append(reported_seq(branch.run("sale", "add", *items).stdout))
        problems: list[str] = []
        if branch.run("sync", check=False).returncode != 1:
            problems.append("a sync with the line down did not exit 1")
        cli("branchsync-admin", "catalog", "delete", gone.sku, env=stack.admin_env())
        changed = stack.workdir / f"{tag}.csv"
        changed.write_text(f"sku,name,price,unit\n{repriced.sku},{repriced.name},{format_taka(new_price)},{repriced.unit}\n",
                           encoding="utf-8")
        cli("branchsync-admin", "catalog", "import", changed, env=stack.admin_env())
        faults = offline.fired + 2                                     # cut requests, and the two catalog changes
        proxy.clear()                                                   # the line is back

        result = reconcile(stack, branch, reported=reported, faults=faults)
        local = _local_bodies(branch)
        cloud_sales = {e["sale"]["seq"]: e["sale"] for e in result.exported}
        changed_sales = [seq for seq, sale in local.items() if _as_sold(cloud_sales.get(seq)) != _as_sold(sale)]
        if changed_sales:
            problems.append(f"sales {changed_sales[:10]} are not in the cloud exactly as sold")
        expected = set()
        for seq, sale in local.items():
            for n, line in enumerate(sale["lines"], 1):
                if line["sku"] == gone.sku:
                    expected.add((seq, n, line["sku"], "deleted", line["unit_price"], None, None))
                elif line["sku"] == repriced.sku:
                    diff = line["line_total"] - line_total(Decimal(line["qty"]), new_price)
                    expected.add((seq, n, line["sku"], "price_differs", line["unit_price"], new_price, diff))
        report = cli("branchsync-admin", "report", "price-differences", "--branch", branch.name, "--format", "jsonl",
                     env=stack.admin_env()).stdout
        listed = [json.loads(line) for line in report.splitlines() if line.strip()]
        got = [(d["seq"], d["line"], d["sku"], d["status"], d["sold_price"], d["current_price"], d["difference"])
               for d in listed]
        if len(got) != len(set(got)) or set(got) != expected:
            problems.append(f"the price-difference report differs: missing {sorted(expected - set(got), key=str)[:5]}, "
                            f"extra {sorted(set(got) - expected, key=str)[:5]}, {len(got)} rows for {len(expected)}")
        result.problems = problems + result.problems
        return result


def _local_bodies(branch: Branch) -> dict[int, dict]:
    conn = sqlite3.connect(f"file:{branch.home / 'branchsync.db'}?mode=ro", uri=True, timeout=30)
    try:
        return {seq: json.loads(body) for seq, body in conn.execute("SELECT seq, body FROM sales ORDER BY seq")}
    finally:
        conn.close()


def _as_sold(sale: dict | None):
    """What a sale charged: its lines (sku, qty, unit and list price, line total) and total."""
    if sale is None:
        return None
    return (sale["total"], [(l["sku"], str(Decimal(l["qty"])), l["unit_price"], l["list_price"], l["line_total"])
                            for l in sale["lines"]])


# --- 13-15. restores: a message of the lost database in flight, a void repeated, sale entry meanwhile --------


def events_of(db) -> list[tuple[int, int, str, int, bool]]:
    """(generation, seq, sale_id, total, pushed) of every event in a branch database file, read only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return [(g, s, i, t, p is not None) for g, s, i, t, p in conn.execute(
            "SELECT generation, seq, sale_id, total, pushed_at FROM sales ORDER BY generation, seq")]
    finally:
        conn.close()


def pushed_elsewhere(branch: Branch, safety: str) -> list[tuple[int, int, str, int]]:
    """Events of the database a restore replaced that were pushed: the cloud must count them all the same."""
    mine = {i for _, _, i, _ in branch.local_events()}
    return [(g, s, i, t) for g, s, i, t, pushed in events_of(safety) if pushed and i not in mine]


def hold_push(stack: Stack, branch: Branch, rng: random.Random) -> list:
    """Push the branch's due sales as its sync would, but invisible in the queue (a cloud outage) for an hour."""
    queue = QueueClient.from_connection_string(stack.storage, SALES_QUEUE)
    held = []
    with Store(branch.home) as store:
        identity, todo = store.identity(), store.sales_to_push()
        budget = rng.choice([60_000, 1_500])           # one message, or several
        for sales, text in pack_sales(identity.branch, todo, identity.secret, datetime.now(timezone.utc), budget=budget):
            held.append(queue.send_message(text, visibility_timeout=3600))
            store.mark_pushed([s.seq for s in sales])
    return [(queue, m) for m in held]


def release(held: list) -> None:
    for queue, message in held:
        queue.update_message(message, pop_receipt=message.pop_receipt, visibility_timeout=0)


class RestoreInFlight(Scenario):
    """The till's last push is held in the queue (an outage) while it is restored from an older backup
    and sells on; then the outage ends. Every sale, held ones included, must count exactly once."""

    name, number, trials = "restore-with-message-in-flight", 13, 20
    # one held message released after the sync (seed 100), several released before it (102)
    quick_seeds = (100, 102)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"rif{seed}")
        reported = branch.add_sales(rng.randint(1, 3), rng)
        branch.run("sync")
        saved = branch.run("backup").stdout.split("backup written: ")[1].strip()
        reported += branch.add_sales(rng.randint(1, 4), rng)
        held = hold_push(stack, branch, rng)
        restored = branch.run("restore", saved)
        safety = restored.stdout.split("the previous database is saved as ")[1].strip().splitlines()[0]
        after = branch.add_sales(rng.randint(1, 4), rng)
        problems = [f"a sale after the restore was numbered {n}, not in generation 2" for n in after
                    if not str(n).startswith("2-")]
        release_first = rng.random() < 0.5
        if release_first:
            release(held)
        branch.run("sync")
        if not release_first:
            release(held)
        result = reconcile(stack, branch, reported=after, faults=len(held),
                           sent_elsewhere=pushed_elsewhere(branch, safety))
        result.problems = problems + result.problems
        return result


class RestoreThenVoid(Scenario):
    """A sale is voided and synced, the till restored from a backup taken before the void, and the sale
    voided again: the cloud must count one void, refuse the second visibly, and apply the sales behind it."""

    name, number, trials = "restore-then-void", 14, 20
    # the backup holds the sales unpushed, a void after the refused one (seed 100); pushed, none (101)
    quick_seeds = (100, 101)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"rtv{seed}")
        reported = branch.add_sales(rng.randint(2, 4), rng)
        if rng.random() < 0.5:
            branch.run("sync")                          # the backup holds them pushed, or not yet
        saved = branch.run("backup").stdout.split("backup written: ")[1].strip()
        victim = rng.choice(reported)
        branch.run("sale", "void", victim)
        branch.run("sync")
        # A void goes with its sale or after the sale's ack: once the cloud has the sales, sync for the void.
        wait_applied(stack, branch.name, max(reported))
        branch.run("sync")
        restored = branch.run("restore", saved)
        safety = restored.stdout.split("the previous database is saved as ")[1].strip().splitlines()[0]
        again = branch.run("sale", "void", victim).stdout.split("voided by number ")[1].split(":")[0]
        after = branch.add_sales(rng.randint(0, 3), rng)  # sales behind the refused void
        if after and rng.random() < 0.5:                 # and a void the cloud must count
            branch.run("sale", "void", after[0])
        for _ in range(3):                               # the void of an old sale waits for its ack
            branch.run("sync")
        problems = []
        letters = _wait_dead_letters(stack, branch.name, 1)
        if [d.code for d in letters] != ["void_twice"]:
            problems.append(f"the second void was not dead-lettered as void_twice: {[d.code for d in letters]}")
        branch.run("sync")                               # its pull brings the refusal home
        refusal = branch.status()["last_refusal"] or {}
        if (refusal.get("code"), refusal.get("number")) != ("void_twice", again):
            problems.append(f"the till's status does not name the refused void {again}: {refusal}")
        result = reconcile(stack, branch, reported=after, faults=1, refused=[again],
                           sent_elsewhere=pushed_elsewhere(branch, safety))
        result.problems = problems + result.problems
        return result


class SaleEntryDuringRestore(Scenario):
    """`sale add` runs again and again while `branchsync restore` replaces the database. Every sale it
    reports recorded must be in the restored database, or (forced) in the safety copy and named by the
    restore as dropped; unforced, a restore that would drop one is refused and changes nothing."""

    name, number, trials = "sale-entry-during-restore", 15, 20
    # unforced (even seed), forced (odd)
    quick_seeds = (100, 101)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        rng = random.Random(seed)
        branch = new_branch(stack, f"sedr{seed}")
        reported = branch.add_sales(rng.randint(1, 3), rng)
        branch.run("sync")
        saved = branch.run("backup").stdout.split("backup written: ")[1].strip()
        force = seed % 2 == 1
        stop = threading.Event()
        during: list = []

        def cashier():
            local = random.Random(seed * 7919)
            while not stop.is_set():
                out = branch.run("sale", "add", *random_items(local), check=False)
                if out.returncode == 0:
                    during.append(reported_seq(out.stdout))

        till = threading.Thread(target=cashier)
        till.start()
        time.sleep(rng.uniform(0.0, 2.0))
        restore = branch.run("restore", saved, *(["--force"] if force else []), check=False)
        time.sleep(rng.uniform(0.5, 1.5))
        stop.set()
        till.join()
        problems, dropped = [], []
        if restore.returncode == 0:
            facts = branch.status()["restored"]
            dropped = facts["lost_sales"]
            kept = {str(s) if g == 1 else f"{g}-{s}" for g, s, _, _, _ in events_of(facts["safety_backup"])}
            problems += [f"sale {n} is named dropped but is not in the safety copy" for n in dropped if n not in kept]
            if dropped and not force:
                problems.append(f"an unforced restore dropped {dropped}")
        elif restore.returncode != 2 or force:
            problems.append(f"restore exited {restore.returncode}: {restore.stderr.strip()[-300:]}")
        if not during:
            problems.append("no sale was recorded while the restore ran")
        result = reconcile(stack, branch, reported=[*reported, *during], faults=len(during), kept_elsewhere=dropped)
        result.problems = problems + result.problems
        return result


def all_scenarios(quick: bool = False) -> list[Scenario]:
    week = OfflineWeek()
    week.quick = quick
    restart = AzuriteRestart()
    restart.quick = quick
    return [PullCut(), PushCut(), Kill("sale-add"), Kill("sync"), Redeliver(), ApplyFails(), restart, ClockSkew(),
            Concurrent(), week, DeadLetters(), ClonedTill(), CatalogChangedOffline(), RestoreInFlight(),
            RestoreThenVoid(), SaleEntryDuringRestore(),
            PushRouteFaults()]



# --- 16. pushes through the push route, cut and sent twice ------------------------------------


def _is_push_post(method: str, path: str) -> bool:
    return method == "POST" and path.split("?")[0] == "/api/push"


class PushRouteFaults(Scenario):
    """A route-mode cloud (no SAS: every push is a signed POST /api/push) behind a proxy that cuts
    the POSTs after k of n messages, before the cloud queued them or after (the answer is lost and
    the branch sends them again); then copies of the pushed messages are POSTed once more."""

    name, number, trials = "push-route", 16, 8
    # as push-cut: seed 100 queued but the answer lost, 3 times; 102 cut before the cloud, once
    quick_seeds = (100, 102)

    def __init__(self):
        self._setup = None

    def _env(self, stack: Stack):
        if self._setup is None:
            from headoffice.stand_ins import free_port
            proxy = NetCut(free_port())
            stack.extra.append(proxy)
            cloud = stack.own_cloud("cloud-pushroute", extra_env={"BRANCHSYNC_PUBLIC_URL": proxy.url,
                                                                  "BRANCHSYNC_PUSH_MODE": "route"})
            proxy.target = ("127.0.0.1", cloud.port)
            self._setup = (proxy, cloud)
        return self._setup

    def run(self, stack: Stack, seed: int) -> TrialResult:
        from branch_client.cloud_client import PushWay
        rng = random.Random(seed)
        proxy, cloud = self._env(stack)
        proxy.clear()
        branch = new_branch(stack, f"route{seed}", url=cloud.url)
        seed_sales(branch, rng.randint(2_600, 4_200), rng)          # several messages, one POST each
        reported = branch.add_sales(2, rng)
        identity, _, copies = packed_push(branch, budget=60_000)      # the same sales, packed as the push will
        k = rng.randint(0, 2)
        times = rng.choice([1, 2, 3, 4])                               # 3+ outlast the client's retries
        before = rng.random() < 0.5                                    # else: queued, but the answer is lost
        rule = proxy.add(Cut(match=_is_push_post, skip=k, times=times, response_bytes=None if before else 0))
        first = branch.run("sync", check=False)
        proxy.clear()
        problems = [] if first.returncode in (0, 1) else [f"cut sync exited {first.returncode}: {first.stderr[-300:]}"]
        # Duplicate POSTs: some of the pushed messages handed to the route again, as a resending proxy would.
        resent = rng.sample(copies, rng.randint(1, len(copies)))
        with CloudClient(cloud.url, identity.branch, identity.secret) as client:
            way = PushWay.of(client.pull(0, limit=1))
            if way.queue is not None:
                problems.append("the route-mode cloud handed out a queue SAS")
            for text in resent:
                client.push(way, text)
        result = reconcile(stack, branch, reported=reported, faults=rule.fired + len(resent))
        if not count_in_log(cloud.log, f"push route branch={branch.name}"):
            problems.append("the dedicated cloud logged no push through the route")
        result.problems = problems + result.problems
        return result
