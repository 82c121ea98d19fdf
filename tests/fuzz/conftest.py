"""The fuzz suite's world: the real FunctionApp, a real TableStore on Azurite, seeded data.

Handlers are called in-process with azure.functions request and queue objects (fast, and
the very functions the Functions host runs). The one stand-in is `RecordingStore`, a
wrapper at the Store seam that forwards every call to the real TableStore and records the
calls that write, so a test can say "nothing was stored" for each generated case without
re-reading every table.
"""

import functools
import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from azure.storage.queue import QueueClient

import branchsync_cloud.http
from branchsync_cloud.queue_access import SalesQueue
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.store import DeadLetter
from branchsync_cloud.table_store import TableStore
from headoffice.devhost import DEFAULT_APP_DIR, discover, load_app
from shared.encoding import encode_batch, from_queue_text
from shared.enrollment import decode_code
from shared.models import CatalogImport, EnrollRequest
from tests.builders import make_batch, make_product
from tests.fuzz.strategies import frame

ADMIN_KEY = "fuzz-admin-key-" + uuid.uuid4().hex

# Store methods that only read; every other public method counts as a write, so a write
# method added to the Store later is recorded without touching this file.
READS = frozenset({
    "get_branch", "find_branch_by_token_hash", "list_branches", "get_ledger", "iter_chunks",
    "get_catalog_counter", "get_catalog_index", "read_catalog", "scan_catalog", "list_dead_letters",
    "get_dead_letter", "get_person", "list_people", "list_audit",
    "get_ledger_and_days", "read_summaries",
})


class RecordingStore:
    """The real store, with every write that went through recorded as (method, args, kwargs).

    A write that raised (Conflict: the row exists or changed) stored nothing and is not recorded.
    """

    def __init__(self, inner: TableStore):
        self._inner = inner
        self.writes: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name):
        value = getattr(self._inner, name)
        if name.startswith("_") or name in READS or not callable(value):
            return value

        def recorded(*args, **kwargs):
            result = value(*args, **kwargs)
            self.writes.append((name, args, kwargs))
            return result

        return recorded

    def take(self) -> list[tuple[str, tuple, dict]]:
        """The writes since the last call, and forget them."""
        out, self.writes = self.writes, []
        return out


@dataclass
class World:
    service: Service
    store: RecordingStore
    branch: str  # enrolled; its secret signs the generated requests and messages
    secret: str
    victim: str  # enrolled too; a generated rotate/revoke may hit it, never `branch`
    pending: str  # created, not enrolled yet
    skus: list[str]
    letter_ids: list[str]
    pending_token: str
    admin_key: str = ADMIN_KEY


@functools.cache
def app_functions():
    """The HTTP functions as {(METHOD, route): handler} and the queue function, read off the FunctionApp."""
    http_functions, queue_functions = discover(load_app(DEFAULT_APP_DIR))
    http = {(method, f.route): f.fn for f in http_functions
            for method in sorted(f.methods or {"GET", "POST", "PUT", "DELETE", "PATCH"})}
    (queue,) = queue_functions
    return http, queue.fn


@pytest.fixture
def world(storage) -> World:
    """A freshly seeded world (its own tables) per test, served through cloud.http's service slot.

    Each test gets its own, so what one endpoint's accepted cases store (branches, catalog
    versions) does not slow down or change the cases of another.
    """
    prefix = "fz" + uuid.uuid4().hex[:10]
    store = RecordingStore(TableStore(storage, prefix))
    settings = Settings(storage=storage, admin_key=ADMIN_KEY, public_url="https://cloud.example", table_prefix=prefix)
    # Accepted pushes go to a queue of this world's own, not to the sales queue a dev host polls.
    push_queue = "fzpush" + uuid.uuid4().hex[:10]
    QueueClient.from_connection_string(storage, push_queue).create_queue()
    service = Service(store, settings, sales_queue=SalesQueue(storage, push_queue))

    def enroll(name: str) -> str:
        created = service.create_branch(name, settings.public_url)
        return service.enroll(EnrollRequest(token=decode_code(created.enrollment_code).token)).secret

    branch, victim, pending = "fz-" + uuid.uuid4().hex[:8], "fz-victim", "fz-pending"
    secret = enroll(branch)
    enroll(victim)
    pending_token = decode_code(service.create_branch(pending, settings.public_url).enrollment_code).token
    skus = ["RICE-5KG", "DAL-1KG", "চা-পাতা"]
    service.import_catalog(CatalogImport(products=[make_product(s) for s in skus]))
    service.apply_message(from_queue_text(encode_batch(make_batch(branch, [1, 2, 3]), secret)))
    letter = DeadLetter(received_at=datetime.now(timezone.utc), code="malformed_message", reason="seeded", raw=b"BSQ1junk")
    letter_ids = [store.add_dead_letter(letter) for _ in range(3)]
    # Dead letters any holder of the push SAS could cause: signed bodies nested 100,000 deep, or
    # with a time off the calendar once in UTC. Showing or replaying them must answer 2xx/4xx.
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"sales":[' * 50_000 + b"]}" * 50_000,
                json.dumps({"v": 1, "branch": branch, "sent_at": "9999-12-31T23:59:59-23:59", "sales": []}).encode()):
        hostile = DeadLetter(received_at=datetime.now(timezone.utc), code="malformed_message", reason="seeded",
                             raw=frame(branch, secret, zlib.compress(raw, 9)), branch=branch)
        letter_ids.append(store.add_dead_letter(hostile))
    store.take()

    mp = pytest.MonkeyPatch()
    mp.setenv("BRANCHSYNC_ADMIN_KEY", ADMIN_KEY)  # as the app settings would say; the check uses the service's
    mp.setattr(branchsync_cloud.http, "_service", service)
    yield World(service, store, branch, secret, victim, pending, skus, letter_ids, pending_token)
    mp.undo()
