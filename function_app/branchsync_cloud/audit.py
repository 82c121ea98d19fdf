"""The audit trail of head-office requests: who, with which role, which route, what, when, and the result.

Every head-office request whose sender was recognised is recorded, refused ones (403) too;
a key or credential the cloud refuses (401) names nobody and is only logged, so an
anonymous caller cannot make the cloud write. Entries are only ever added (an insert
each, docs/storage.md); `describe` says what a request asked for without any secret.
"""

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from shared.access import BOOTSTRAP_NAME, PERSON_NAME_RE, AuditEntry, AuditPage
from shared.errors import ContractError, ErrorCode

from .roles import Principal
from .store import StorageError, Store
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")

WHAT_MAX_CHARS = 500
VALUE_MAX_CHARS = 60
AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX = 200, 1000
AUDIT_DEFAULT_DAYS = 7


def describe(route_params: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
    """`name=b1 products=[500]`: a request's route and query parameters and its JSON body, summarised."""
    parts = [f"{_short(k)}={_short(v)}" for k, v in {**route_params, **query}.items() if v]
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        data = None
        parts.append(f"body=[{len(body)} bytes, not JSON]")
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, list):
                scalars = all(isinstance(v, str) for v in value) and len(value) <= 8
                parts.append(f"{_short(key)}=" + (",".join(_short(v) for v in value) if scalars else f"[{len(value)}]"))
            elif not isinstance(value, dict):
                parts.append(f"{_short(key)}={_short(value)}")
    text = " ".join(parts)
    return text if len(text) <= WHAT_MAX_CHARS else text[: WHAT_MAX_CHARS - 3] + "..."


def _short(value) -> str:
    text = str(value)
    text = text if text.isprintable() else ascii(text)[1:-1]
    return text if len(text) <= VALUE_MAX_CHARS else text[: VALUE_MAX_CHARS - 3] + "..."


class AuditTrail:
    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock

    def record(self, who: Principal, role: str, method: str, route: str, what: str, status: int, result: str) -> None:
        """Add one entry. The request has already done its work, so a storage failure here is
        logged with the whole entry (it reaches Application Insights) rather than answered."""
        entry = AuditEntry(at=self.clock(), who=who.name, via=who.via, role=role, method=method, route=route,
                           what=what, status=status, result=result)
        try:
            self.store.add_audit(entry)
        except StorageError as exc:
            log.error("audit entry not stored (%s): %s", exc, entry.model_dump_json(),
                      extra=dims(event="audit_lost", who=who.name, route=f"{method} {route}", status=status))
            return
        log.info("audit who=%s %s %s %s -> %d %s", entry.who, method, route, what, status, result,
                 extra=dims(event="audit", who=entry.who, via=entry.via, role=role, route=f"{method} {route}",
                            status=status, result=result))

    def entries(self, since: datetime | None, who: str | None, after: str | None, limit: int) -> AuditPage:
        if since is None:
            since = self.clock() - timedelta(days=AUDIT_DEFAULT_DAYS)
        if after is not None and not _is_audit_id(after):
            raise ContractError(ErrorCode.BAD_REQUEST, "query parameter after must be the `next` of an audit page")
        if who and who != BOOTSTRAP_NAME and not PERSON_NAME_RE.fullmatch(who):
            raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter who must be a person's name (as "
                                f"'branchsync-admin people list' shows it) or {BOOTSTRAP_NAME}")
        found, more = self.store.list_audit(since, after, who or None, limit)
        return AuditPage(entries=found, next=more)


def _is_audit_id(value: str) -> bool:
    stamp, dash, rand = value.partition("-")
    return (len(stamp) == 21 and stamp[8] == "T" and (stamp[:8] + stamp[9:]).isdigit() and dash == "-"
            and len(rand) == 8 and all(c in "0123456789abcdef" for c in rand))
