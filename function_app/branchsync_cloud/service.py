"""The one object the Functions handlers and the dev host hold: the cloud's jobs over one Store.

Each job lives in a module of its own; this facade builds them over the same Store,
settings and clock and names every operation a handler calls:

- request_auth.py: a branch's signed request (and its nonce), the admin key
- branches.py: create, enroll, rotate, revoke, list
- pull.py: what a branch pulls (catalog page, acks, how to push)
- ingest.py: the push route, applying a queue message, dead letters
- catalog_writes.py: catalog import, delete, compaction
- reports.py: the sales export, the price-differences report, the reports from the day summaries
- people.py, audit.py: head office's named credentials, and the audit of their requests

Input that breaks the contract raises shared.errors.ContractError; storage trouble raises
store.StoreUnavailable (HTTP 503, or a queue retry).
"""

from collections.abc import Callable
from datetime import date, datetime, timezone

from shared.models import (
    BranchCreated, BranchList, BranchRevocation, BranchRotation, CatalogCompaction, CatalogImport, CatalogWriteResult,
    DeadLetterDetail, DeadLetterInfo, DeadLetterList, EnrollAnswer, EnrollRequest, PriceDifferencePage,
    PushAccepted, ReplayResult, ReportTable, SalesExportPage, SummaryRebuild,
)

from shared.access import AuditPage, PeopleList, PersonCreate, PersonCreated, PersonRevocation, Role, Whoami

from .audit import AuditTrail
from .branches import Branches
from .catalog_writes import CatalogWrites
from .ingest import ApplyOutcome, Ingest
from .pull import PullQuery, PullReply, Pulls
from .queue_access import SalesQueue
from .people import People
from .reports import EXPORT_LIMIT_DEFAULT, Reports
from .request_auth import RequestAuth, SignedRequest
from .roles import Principal
from .settings import Settings
from .store import BranchRecord, Store


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Service:
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], datetime] = _utcnow, signer=None,
                 sales_queue=None):
        self.store = store
        self.settings = settings
        self.clock = clock
        self._sales_queue = sales_queue
        self.auth = RequestAuth(store, clock)
        self.branches = Branches(store, clock)
        self.pulls = Pulls(store, settings, clock, signer)
        self.ingest = Ingest(store, clock, self.auth, lambda: self.sales_queue, settings.business_zone)
        self.catalog = CatalogWrites(store)
        self.reports = Reports(store, settings.business_zone)
        self.people = People(store, clock)
        self.audit = AuditTrail(store, clock)

    @property
    def signer(self):
        return self.pulls.signer

    @property
    def sales_queue(self):
        """Where POST /api/push puts the branches' messages (with the app's own identity)."""
        if self._sales_queue is None:
            self._sales_queue = SalesQueue(self.settings.storage_source)
        return self._sales_queue

    # branches' requests
    def authenticate(self, request: SignedRequest) -> BranchRecord:
        return self.auth.authenticate(request)

    def enroll(self, request: EnrollRequest) -> EnrollAnswer:
        return self.branches.enroll(request)

    def pull(self, branch: BranchRecord, query: PullQuery) -> PullReply:
        return self.pulls.pull(branch, query)

    def push(self, request: SignedRequest) -> PushAccepted:
        return self.ingest.push(request)

    # the queue function
    def apply_message(self, body: bytes) -> ApplyOutcome:
        return self.ingest.apply_message(body)

    # head office: branches
    def create_branch(self, name: str, base_url: str) -> BranchCreated:
        return self.branches.create(name, base_url)

    def rotate_branch(self, name: str) -> BranchRotation:
        return self.branches.rotate(name)

    def revoke_branch(self, name: str) -> BranchRevocation:
        return self.branches.revoke(name)

    def list_branches(self) -> BranchList:
        return self.branches.list_all()

    # head office: dead letters
    def list_dead_letters(self) -> DeadLetterList:
        return self.ingest.list_dead_letters()

    def get_dead_letter(self, letter_id: str) -> DeadLetterDetail:
        return self.ingest.get_dead_letter(letter_id)

    def replay_dead_letter(self, letter_id: str) -> ReplayResult:
        return self.ingest.replay_dead_letter(letter_id)

    def discard_dead_letter(self, letter_id: str) -> DeadLetterInfo:
        return self.ingest.discard_dead_letter(letter_id)

    # head office: catalog
    def import_catalog(self, request: CatalogImport) -> CatalogWriteResult:
        return self.catalog.import_catalog(request)

    def delete_sku(self, sku: str) -> CatalogWriteResult:
        return self.catalog.delete_sku(sku)

    def purge_tombstones(self, up_to: int | None = None) -> int:
        return self.catalog.purge_tombstones(up_to)

    def compact_catalog(self, up_to: int | None = None) -> CatalogCompaction:
        return self.catalog.compact_catalog(up_to)

    # head office: reports
    def export_sales(self, branch: str | None = None, after: str | None = None,
                     limit: int = EXPORT_LIMIT_DEFAULT) -> SalesExportPage:
        return self.reports.export_sales(branch, after, limit)

    def price_differences(self, branch: str | None = None, since: datetime | None = None, after: str | None = None,
                          limit: int = EXPORT_LIMIT_DEFAULT) -> PriceDifferencePage:
        return self.reports.price_differences(branch, since, after, limit)

    # head office: people and the audit
    @staticmethod
    def whoami(caller: Principal) -> Whoami:
        return Whoami(name=caller.name, roles=sorted(caller.roles, key=list(Role).index), via=caller.via)

    def create_person(self, request: PersonCreate, caller: Principal) -> PersonCreated:
        return self.people.create(request, caller)

    def list_people(self) -> PeopleList:
        return self.people.list_all()

    def revoke_person(self, name: str, caller: Principal) -> PersonRevocation:
        return self.people.revoke(name, caller)

    def audit_entries(self, since: datetime | None, who: str | None, after: str | None, limit: int) -> AuditPage:
        return self.audit.entries(since, who, after, limit)

    def sales_report(self, first: date, last: date, branch: str | None = None, by: str = "day") -> ReportTable:
        return self.reports.sales_report(first, last, branch, by)

    def shifts_report(self, first: date, last: date, branch: str | None = None) -> ReportTable:
        return self.reports.shifts_report(first, last, branch)

    def exceptions_report(self, first: date, last: date, branch: str | None = None) -> ReportTable:
        return self.reports.exceptions_report(first, last, branch)

    def rebuild_summaries(self, branch: str | None = None) -> SummaryRebuild:
        return self.reports.rebuild_summaries(branch)
