"""What every HTTP handler shares: read the request, check who head office's caller is and
their role (roles.py), record head-office requests in the audit, map errors to JSON.

Everything that reads HTTP is here (headers, query parameters, the body), so the jobs
behind the facade (service.py) take typed arguments. Every failure a caller can cause
becomes a 4xx with {"error": {"code", "message"}}; storage trouble becomes 503
`unavailable`. Nothing a client sends yields a 500.
"""

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from typing import TypeVar
from urllib.parse import urlsplit

import azure.functions as func
import deflate
from pydantic import BaseModel, ValidationError

from shared import limits
from shared.errors import ContractError, ErrorCode
from shared.models import PUSH_WAYS, describe_errors
from shared.signing import HEADER_ADMIN_KEY, HEADER_BRANCH, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME

from . import collector
from .pull import PullQuery
from .audit import describe
from .request_auth import SignedRequest, head_office_principal
from .roles import Principal, check_role, required_role
from .service import Service
from .settings import Settings
from .store import Conflict, StorageError, StoreUnavailable
from .table_store import TableStore

log = logging.getLogger("branchsync.cloud.http")

# Far above any valid body (a 1,000-product import is ~300 KB); refuse before parsing.
MAX_BODY_BYTES = 4 * 1024 * 1024

M = TypeVar("M", bound=BaseModel)

# Answers at least this large go gzipped to clients that accept it (the branch's httpx does by
# default). The Functions host compresses nothing itself on Linux plans (azure-functions-host
# issues 7285 and 9338), and a catalog page of repetitive JSON shrinks several times over.
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 6

# The optional `version` a branch sends with its pull (its branchsync version): logged only.
CLIENT_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}")

_service: Service | None = None
_settings: Settings | None = None
_service_lock = threading.Lock()
_lake_writer = None


def get_settings() -> Settings:
    """The app settings, read once per worker process at first use (the Service's, once it exists).

    Separate from the Service so the admin-key check and health work when storage cannot.
    """
    global _settings
    if _service is not None:
        return _service.settings
    if _settings is None:
        with _service_lock:
            if _settings is None:
                _settings = Settings.from_env()
    return _settings


def get_service() -> Service:
    """One Service per worker process, built on first use so app settings are read at run time."""
    global _service
    if _service is None:
        settings = get_settings()
        with _service_lock:
            if _service is None:
                # A connection string (Azurite, tests) or, in production, the managed identity.
                _service = Service(TableStore(settings.storage_source, settings.table_prefix), settings)
                collector.settle()  # what the worker keeps is now built
    return _service


def get_lake_writer():
    """One LakeWriter per worker process, over the Service's store and the lake's container.

    Imported here, not at module level: pyarrow is loaded only by the functions that write the lake.
    """
    global _lake_writer
    svc = get_service()
    if _lake_writer is None:
        from .lake_blob import BlobLake
        from .lake_writer import LakeWriter

        with _service_lock:
            if _lake_writer is None:
                s = svc.settings
                _lake_writer = LakeWriter(svc.store, BlobLake(s.storage_source, s.lake_container), s.business_timezone)
    return _lake_writer


def parse_body(req: func.HttpRequest, model: type[M]) -> M:
    return model.model_validate_json(req.get_body() or b"")


def request_path(req: func.HttpRequest) -> str:
    return urlsplit(req.url).path


def signed_request(req: func.HttpRequest) -> SignedRequest:
    return read_signed(req.headers, req.method, request_path(req), dict(req.params), req.get_body() or b"")


def read_signed(headers: Mapping[str, str], method: str, path: str, query: Mapping[str, str],
                body: bytes = b"") -> SignedRequest:
    """A branch's request as signed: the signature headers' values as sent, "" for one that is absent."""
    return SignedRequest(branch=headers.get(HEADER_BRANCH) or "", timestamp=headers.get(HEADER_TIME, ""),
                         nonce=headers.get(HEADER_NONCE, ""), signature=headers.get(HEADER_SIGNATURE, ""),
                         method=method, path=path, query=query, body=body)


def pull_answer(svc: Service, request: SignedRequest) -> str:
    """GET /api/pull, as the answer's JSON (see PullReply.json). The request is authenticated
    before its parameters are read: an unsigned one is a 401."""
    branch = svc.authenticate(request)
    return svc.pull(branch, pull_query(request.query)).json()


def pull_query(query: Mapping[str, str]) -> PullQuery:
    return PullQuery(
        cursor=int_param(query, "cursor", 0, 0, 2**53),
        limit=page_limit(query),
        pending=int_param(query, "pending", None, 0, 2**53),
        version=client_version_param(query),
        ways=push_ways_param(query),
    )


def page_limit(query: Mapping[str, str]) -> int:
    """Entries a page may hold: `max_entries` from a till that takes wide pages, else `limit`.

    Older tills send only `limit` (and refuse a page above CATALOG_PAGE_MAX); newer ones send
    both, so that a cloud older than `max_entries` still answers them, with pages of `limit`.
    """
    limit = int_param(query, "limit", limits.CATALOG_PAGE_MAX, 1, limits.CATALOG_PAGE_MAX)
    return int_param(query, "max_entries", limit, 1, limits.CATALOG_PAGE_WIDE_MAX)


def int_param(query: Mapping[str, str], name: str, default, lo: int, hi: int):
    """A whole-number query parameter within [lo, hi], or `default` when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    # Length first: int() refuses strings of more than 4,300 digits with a ValueError.
    if len(raw) > limits.INT_PARAM_MAX_DIGITS or not raw.isascii() or not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} must be a whole number from {lo} to {hi}")
    return int(raw)


def day_params(query: Mapping[str, str], name: str = "day") -> list[date]:
    """Dates (YYYY-MM-DD) in one query parameter, comma-separated; none when absent."""
    raw = query.get(name) or ""
    try:
        days = [date.fromisoformat(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError:
        days = None
    if days is None or len(days) > 366:
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} must be dates like 2026-11-28, "
                            "comma-separated, at most 366")
    return days


def rebuild_source(query: Mapping[str, str]) -> str:
    """Where `report rebuild` folds from: the stored sales (default) or the data lake's events."""
    source = (query.get("from") or "sales").strip().lower()
    if source not in ("sales", "lake"):
        raise ContractError(ErrorCode.BAD_REQUEST, "query parameter from must be sales (the stored sales) or lake "
                            "(the data lake's events)")
    return source


def time_param(name: str, raw: str | None) -> datetime | None:
    """An optional time query parameter: ISO 8601 with a zone, or a date (midnight UTC)."""
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is not None and len(raw) == 10:  # a bare date
        moment = moment.replace(tzinfo=timezone.utc)
    if moment is None or moment.tzinfo is None:
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} must be a date (2026-11-28) or a time "
                            "with a zone (2026-11-28T06:00:00Z)")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59:59-23:59 is in year 10000 in UTC
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} lies outside the years 1 to 9999 once "
                            "converted to UTC; give a time from 0001-01-02 to 9999-12-30") from None


def date_param(query: Mapping[str, str], name: str) -> date:
    """A required date query parameter (a business day): YYYY-MM-DD."""
    raw = query.get(name) or ""
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} must be a date such as 2026-11-28") from None


def push_ways_param(query: Mapping[str, str]) -> frozenset[str]:
    """The optional `push` of a pull: the ways this branch can push ("queue,route"); the queue if absent."""
    raw = query.get("push")
    if raw is None or raw == "":
        return frozenset({"queue"})
    ways = frozenset(raw.split(","))
    if len(raw) > 40 or not ways <= set(PUSH_WAYS):
        raise ContractError(ErrorCode.BAD_REQUEST, "query parameter push must list ways to push from: "
                            + ", ".join(PUSH_WAYS) + " (e.g. queue,route)")
    return ways


def client_version_param(query: Mapping[str, str]) -> str | None:
    """The optional `version` of a pull: the branch's software version, for the logs only."""
    raw = query.get("version")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not CLIENT_VERSION_RE.fullmatch(raw):
        raise ContractError(ErrorCode.BAD_REQUEST, "query parameter version must be 1 to 40 characters: letters, "
                            "digits and . + _ - (e.g. 0.3.1), starting with a letter or digit")
    return raw


def json_response(body, status: int = 200) -> func.HttpResponse:
    """`body` as JSON: a model, a dict, or text already encoded (a pull answer)."""
    text = body.model_dump_json() if isinstance(body, BaseModel) else body if isinstance(body, str) else json.dumps(body)
    return func.HttpResponse(text, status_code=status, mimetype="application/json", charset="utf-8")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header admits gzip (a q of 0 refuses it; "*" admits it)."""
    found = {}
    for item in (accept_encoding or "").lower().split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name:
            found[name.strip()] = q
    return found.get("gzip", found.get("x-gzip", found.get("*", 0.0))) > 0


def gzipped(body: bytes) -> bytes:
    """`body` in gzip format, by libdeflate: a catalog page is the cloud's biggest answer, and
    zlib spent about as long compressing it as writing its JSON; libdeflate takes about half
    that, a few per cent smaller."""
    return bytes(deflate.gzip_compress(body, GZIP_LEVEL))  # it gives a bytearray


def compressed(req: func.HttpRequest, resp: func.HttpResponse) -> func.HttpResponse:
    """`resp` gzipped when the client accepts gzip and the body is worth it; else unchanged."""
    body = resp.get_body()
    if len(body) < GZIP_MIN_BYTES or not accepts_gzip(req.headers.get("accept-encoding")):
        return resp
    return func.HttpResponse(gzipped(body), status_code=resp.status_code,
                             mimetype=resp.mimetype, charset=resp.charset,
                             headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})


def error_response(err: ContractError) -> func.HttpResponse:
    return json_response(err.to_body(), err.http_status)


def handle(req: func.HttpRequest, action: Callable[..., BaseModel | dict | str], *, admin: bool = False,
           status: int = 200, caller: bool = False) -> func.HttpResponse:
    """`admin`: a head-office route, checked against its role in roles.ROUTE_ROLES and audited.
    `caller`: the action is called with the Principal too (who creates or revokes a credential)."""
    principal: Principal | None = None
    route, role, result = "", "", "ok"
    try:
        if len(req.get_body() or b"") > MAX_BODY_BYTES:
            raise ContractError(ErrorCode.OVERSIZED_MESSAGE, f"request body is larger than {MAX_BODY_BYTES} bytes")
        if admin:
            route, role = required_role(req.method, request_path(req))
            principal = head_office_principal(get_settings(), req.headers.get(HEADER_ADMIN_KEY),
                                              lambda presented: get_service().people.recognise(presented))
            check_role(principal, req.method, route, role)
        svc = get_service()
        resp = compressed(req, json_response(action(svc, principal) if caller else action(svc), status))
    except ContractError as err:
        log.info("refused %s %s: %s %s", req.method, request_path(req), err.code, err.message)
        resp, result = error_response(err), str(err.code)
    except ValidationError as exc:
        err = ContractError(ErrorCode.BAD_REQUEST, describe_errors(exc, 3))
        log.info("refused %s %s: %s", req.method, request_path(req), err.message)
        resp, result = error_response(err), str(err.code)
    except (StoreUnavailable, Conflict) as exc:
        log.warning("unavailable %s %s: %s", req.method, request_path(req), exc)
        resp, result = error_response(ContractError(ErrorCode.UNAVAILABLE, "storage is unavailable or busy; try again in a minute")), "unavailable"
    if principal is not None:
        _audit(req, principal, route, str(role), resp.status_code, result)
    return resp


def _audit(req: func.HttpRequest, principal: Principal, route: str, role: str, status: int, result: str) -> None:
    what = describe(dict(req.route_params), dict(req.params), req.get_body() or b"")
    try:
        trail = get_service().audit
    except StorageError as exc:  # no store to write to (its settings are wrong): the log keeps it
        log.error("audit entry not stored (%s): %s %s %s %s -> %d %s", exc, principal.name, req.method, route, what,
                  status, result)
        return
    trail.record(principal, role, req.method, route, what, status, result)
