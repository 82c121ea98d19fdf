"""The fault-injection harness: stand-ins, branches driven through the real CLIs, reconciliation.

A Scenario runs seeded trials against a Stack (Azurite + the dev host, started here or taken
from the pytest fixtures). Every trial ends with `reconcile`: a final clean sync, then the
branch's sales (its SQLite, read only) are compared with the cloud's export (the real
`branchsync-admin sales export`), sale by sale (seq, sale_id, total) and total by total, and
the branch's status, the poison queue and the dead letters are checked.
"""

import base64
import binascii
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from azure.storage.queue import QueueClient

from headoffice.admin_client import AdminClient
from headoffice.stand_ins import Azurite, Cloud, start_azurite, start_cloud
from shared.models import Product

BIN = Path(sys.executable).parent
CATALOG_SIZE = 2_600          # several pull pages of 1,000
CATALOG_PREFIX = "FLT-"
POISON_QUEUE = "sales-poison"


class HarnessError(AssertionError):
    pass


# --- processes -----------------------------------------------------------------------------


def cli(*args, env: dict, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], env=env, text=True, capture_output=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise HarnessError(f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def sku(i: int) -> str:
    return f"{CATALOG_PREFIX}{i:05d}"


# --- the stand-ins -----------------------------------------------------------------------


@dataclass
class Stack:
    azurite: Azurite
    cloud: Cloud
    admin_key: str
    workdir: Path
    owned: bool = False
    extra: list = field(default_factory=list)  # clouds/azurites/proxies started for scenarios

    @classmethod
    def start(cls, workdir: Path) -> "Stack":
        workdir.mkdir(parents=True, exist_ok=True)
        key = "faults-admin-" + uuid.uuid4().hex
        az = start_azurite(workdir / "azurite")
        try:
            cloud = start_cloud(workdir / "cloud", az.connection_string, key)
        except Exception:
            az.stop()
            raise
        return cls(az, cloud, key, workdir, owned=True)

    def stop(self) -> None:
        for thing in reversed(self.extra):
            try:
                thing.stop()
            except Exception:
                pass
        self.extra.clear()
        if self.owned:
            self.cloud.stop()
            self.azurite.stop()

    @property
    def storage(self) -> str:
        return self.azurite.connection_string

    def admin_env(self, url: str | None = None) -> dict:
        return {**os.environ, "BRANCHSYNC_ADMIN_KEY": self.admin_key, "BRANCHSYNC_URL": url or self.cloud.url}

    def admin(self, url: str | None = None) -> "closing[AdminClient]":
        return closing(AdminClient(url or self.cloud.url, self.admin_key))

    def own_cloud(self, name: str, *, storage: str | None = None, extra_env: dict | None = None) -> Cloud:
        """A dedicated dev host process (stopped with the stack, or earlier with .stop())."""
        c = start_cloud(self.workdir / name, storage or self.storage, self.admin_key, extra_env=extra_env)
        self.extra.append(c)
        return c

    def own_azurite(self, name: str) -> Azurite:
        az = start_azurite(self.workdir / name)
        self.extra.append(az)
        return az

    def ensure_catalog(self, url: str | None = None, size: int = CATALOG_SIZE) -> int:
        """A catalog of `size` products (idempotent: unchanged products are skipped by the cloud)."""
        products = [Product(sku=sku(i), name=f"পণ্য Product {i}", price=1_000 + (i * 37) % 90_000,
                            unit="kg" if i % 7 == 0 else "pcs") for i in range(size)]
        with self.admin(url) as a:
            for i in range(0, size, 1000):
                a.import_products(products[i:i + 1000])
        return size


# --- branches ------------------------------------------------------------------------------


@dataclass
class Branch:
    name: str
    home: Path
    env: dict

    def run(self, *args, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        return cli("branchsync", "--home", self.home, *args, env=self.env, check=check, timeout=timeout)

    def argv(self, *args) -> list[str]:
        return [str(BIN / "branchsync"), "--home", str(self.home), *map(str, args)]

    def status(self) -> dict:
        return json.loads(self.run("status", "--json").stdout)

    def local_sales(self) -> list[tuple[int, str, int]]:
        """(seq, sale_id, total) of every event in the branch database, read only."""
        db = self.home / "branchsync.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return [tuple(r) for r in conn.execute("SELECT seq, sale_id, total FROM sales ORDER BY seq")]
        finally:
            conn.close()

    def local_events(self) -> list[tuple[int, int, str, int]]:
        """(generation, seq, sale_id, total) of every event in the branch database, read only."""
        db = self.home / "branchsync.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return [tuple(r) for r in conn.execute("SELECT generation, seq, sale_id, total FROM sales "
                                                   "ORDER BY generation, seq")]
        finally:
            conn.close()

    def add_sales(self, n: int, rng: random.Random) -> list[int]:
        """Record n sales through the real CLI; returns the numbers it reported."""
        seqs = []
        for _ in range(n):
            seqs.append(reported_seq(self.run("sale", "add", *random_items(rng), "--payment",
                                              rng.choice(["cash", "card", "bkash:9C7D2XK41Q"])).stdout))
        return seqs


def random_items(rng: random.Random, catalog: int = CATALOG_SIZE) -> list[str]:
    items = []
    for i in rng.sample(range(catalog), rng.randint(1, 4)):
        qty = f"{rng.randint(1, 5)}" if i % 7 else f"{rng.randint(1, 3000) / 1000:.3f}"
        items.append(f"{sku(i)}={qty}")
    return items


def reported_seq(stdout: str) -> int | str | None:
    """The number `sale add` reported: an int in generation 1, the printed `2-14` after a restore."""
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "sale" and parts[2].startswith("recorded"):
            return int(parts[1]) if parts[1].isdigit() else parts[1]
    return None


def new_branch(stack: Stack, tag: str, *, url: str | None = None, catalog: bool = True) -> Branch:
    """Create a branch at the cloud `url` (its enrollment code carries that cloud's public URL) and enroll it.

    `catalog`: enrollment pulls the catalog (the first sync, in the enrolling process); without it
    the scenario's own first sync pulls it, through its faults.
    """
    name = f"f-{tag}-{uuid.uuid4().hex[:8]}"[:40]
    with stack.admin(url) as a:
        code = a.add_branch(name).enrollment_code
    home = stack.workdir / "branches" / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCHSYNC_")}
    branch = Branch(name, home, env)
    branch.run("enroll", code, *([] if catalog else ["--no-catalog"]))
    return branch


# --- reconciliation ------------------------------------------------------------------------


@dataclass
class TrialResult:
    faults_injected: int = 0
    sales_recorded: int = 0
    sales_lost: int = 0
    sales_duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    exported: list[dict] = field(default_factory=list, repr=False)  # reconcile's export, for the scenario's own checks

    def __iadd__(self, other: "TrialResult") -> "TrialResult":
        self.faults_injected += other.faults_injected
        self.sales_recorded += other.sales_recorded
        self.sales_lost += other.sales_lost
        self.sales_duplicated += other.sales_duplicated
        self.problems += other.problems
        return self

    @property
    def ok(self) -> bool:
        return not self.sales_lost and not self.sales_duplicated and not self.problems


def wait_applied(stack: Stack, branch: str, through: int, timeout: float = 90, generation: int = 1) -> int:
    deadline = time.monotonic() + timeout
    with stack.admin() as a:
        while True:
            mine = next((b for b in a.branches().branches if b.branch == branch), None)
            done = 0
            if mine is not None:
                done = mine.applied_through if generation == 1 else next(
                    (g.applied_through for g in mine.acks or () if g.generation == generation), 0)
            if done >= through or time.monotonic() > deadline:
                return done
            time.sleep(0.25)


def poison_mentions(storage: str, branch: str) -> int:
    """Messages in the poison queue that name `branch` (peeks up to 32)."""
    q = QueueClient.from_connection_string(storage, POISON_QUEUE)
    try:
        found = 0
        for m in q.peek_messages(max_messages=32):
            try:
                raw = base64.b64decode(m.content)
            except (binascii.Error, ValueError):
                raw = str(m.content).encode()
            found += branch.encode() in raw
        return found
    except Exception as exc:  # the queue does not exist yet: nothing was poisoned
        if "QueueNotFound" in str(exc) or "does not exist" in str(exc):
            return 0
        raise
    finally:
        q.close()


def reconcile(stack: Stack, branch: Branch, *, dead_letters: int = 0, reported: Iterable[int | str] = (),
              faults: int = 0, apply_timeout: float = 90, refused: Iterable[str] = (),
              kept_elsewhere: Iterable[str] = (), sent_elsewhere: Iterable[tuple[int, int, str, int]] = ()) -> TrialResult:
    """A final clean sync, then branch and cloud compared sale by sale and total by total.

    Sales are keyed by (generation, seq): a restored till numbers anew in a new generation.
    `refused`: printed numbers of voids the cloud is expected to refuse (stored, counted
    nowhere, each with a dead letter). `kept_elsewhere`: numbers a forced restore reported
    dropping (checked against its safety copy by the scenario). `sent_elsewhere`: events a
    restore replaced that had been pushed already: they must reach the cloud exactly once too.
    """
    result = TrialResult(faults_injected=faults)
    problems = result.problems
    for attempt in range(3):  # a clean sync; the first may still meet a fault's aftermath (e.g. a held lock)
        done = branch.run("sync", check=False)
        if done.returncode == 0:
            break
        time.sleep(1)
    else:
        problems.append(f"the final clean sync failed: {done.stderr.strip()[-300:]}")
    on_till = branch.local_events()
    held = {(g, s) for g, s, _, _ in on_till}
    events = sorted([*on_till, *(e for e in sent_elsewhere if (e[0], e[1]) not in held)])
    refused = set(refused)
    result.sales_recorded = len(events)
    by_gen: dict[int, list[int]] = {}
    for gen, seq, _, _ in events:
        by_gen.setdefault(gen, []).append(seq)
    for gen, seqs in sorted(by_gen.items()):
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"generation {gen}'s sale numbers are not 1..{len(seqs)} without gaps: {_gaps(seqs)}")
    numbers = {number_of(g, s) for g, s, _, _ in events}
    missing_reported = sorted(set(map(str, reported)) - numbers - set(kept_elsewhere))
    if missing_reported:
        result.sales_lost += len(missing_reported)
        problems.append(f"sales the CLI reported recorded are missing from the branch: {missing_reported[:10]}")
    for gen, seqs in sorted(by_gen.items()):
        applied = wait_applied(stack, branch.name, seqs[-1], apply_timeout, gen)
        if applied < seqs[-1]:
            problems.append(f"the cloud applied generation {gen} through {applied} only, the branch has {seqs[-1]}")
    branch.run("sync", check=False)  # brings the acknowledgement home
    status = branch.status()
    if status["pending"] != 0:
        problems.append(f"branch status pending={status['pending']} after a clean sync (last_error={status['last_error']})")

    out = cli("branchsync-admin", "sales", "export", "--branch", branch.name, "--format", "jsonl",
              env=stack.admin_env()).stdout
    cloud = [json.loads(line) for line in out.splitlines() if line.strip()]
    result.exported = cloud
    cloud_by_key: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for e in cloud:
        cloud_by_key.setdefault((e.get("generation", 1), e["sale"]["seq"]), []).append((e["sale"]["sale_id"],
                                                                                       e["sale"]["total"]))
    counted = [(g, s, i, t) for g, s, i, t in events if number_of(g, s) not in refused]
    for gen, seq, sale_id, total in counted:
        got = cloud_by_key.get((gen, seq), [])
        if (sale_id, total) not in got:
            result.sales_lost += 1
            if len(problems) < 20:
                problems.append(f"sale {number_of(gen, seq)} ({sale_id}, {total}) is not in the cloud as recorded: {got}")
    for gen, seq, _, _ in events:
        if number_of(gen, seq) in refused and (gen, seq) in cloud_by_key:
            problems.append(f"void {number_of(gen, seq)} was counted by the cloud, which should have refused it")
    # Every cloud row beyond one per branch sale present there is a duplicate (or a sale never recorded).
    result.sales_duplicated += len(cloud) - (len(counted) - result.sales_lost + len(missing_reported))
    local_ids = {i for _, _, i, _ in events}
    extra = [e["sale"]["seq"] for e in cloud if e["sale"]["sale_id"] not in local_ids]
    if extra:
        problems.append(f"the cloud holds sales the branch never recorded: seqs {extra[:10]}")
    local_total = sum(t for _, _, _, t in counted)
    cloud_total = sum(e["sale"]["total"] for e in cloud)
    if local_total != cloud_total:
        problems.append(f"takings differ: branch {local_total} paisa, cloud {cloud_total} paisa")
    till_total = sum(t for _, _, _, t in on_till)
    if status["total_paisa"] != till_total:
        problems.append(f"status total_paisa {status['total_paisa']} differs from the database's {till_total}")
    with stack.admin() as a:
        listing = next(b for b in a.branches().branches if b.branch == branch.name)
        letters = [d for d in a.dead_letters().dead_letters if d.branch == branch.name]
    if listing.sales_applied != len(counted) or listing.total_paisa != local_total:
        problems.append(f"cloud counters sales_applied={listing.sales_applied} total_paisa={listing.total_paisa}, "
                        f"branch has {len(counted)} counted sales, {local_total} paisa")
    if len(letters) != dead_letters + len(refused):
        problems.append(f"{len(letters)} dead letters for the branch, the scenario made {dead_letters + len(refused)}: "
                        f"{[d.code for d in letters]}")
    poisoned = poison_mentions(stack.storage, branch.name)
    if poisoned:
        problems.append(f"{poisoned} message(s) of the branch in {POISON_QUEUE}")
    return result


def number_of(generation: int, seq: int) -> str:
    return str(seq) if generation == 1 else f"{generation}-{seq}"


def _gaps(seqs: list[int]) -> str:
    want = set(range(1, (max(seqs) if seqs else 0) + 1))
    return f"missing {sorted(want - set(seqs))[:10]}, repeated {[s for s, n in Counter(seqs).items() if n > 1][:10]}"


def count_in_log(path: Path, needle: str) -> int:
    try:
        return path.read_text(errors="replace").count(needle)
    except FileNotFoundError:
        return 0


# --- scenarios ---------------------------------------------------------------------------


class Scenario:
    """name, trials at full strength, the seeds of `--quick` / pytest; run(stack, seed) -> TrialResult."""

    name: str = ""
    number: int = 0
    trials: int = 3
    # The few trials pytest runs: seeds picked so that together they provoke the scenario's
    # failure modes (where to cut, before or after, ...) that so few trials can.
    quick_seeds: tuple[int, ...] = (100,)

    @property
    def quick_trials(self) -> int:
        return len(self.quick_seeds)

    def run(self, stack: Stack, seed: int) -> TrialResult:
        raise NotImplementedError

    def run_many(self, stack: Stack, seeds: list[int]) -> TrialResult:
        total = TrialResult()
        for seed in seeds:
            total += self.run(stack, seed)
        return total
