"""What every HTTP handler shares: parse the body, check the admin key, map errors to JSON.

Every failure a caller can cause becomes a 4xx with {"error": {"code", "message"}};
storage trouble becomes 503 `unavailable`. Nothing a client sends yields a 500.
"""

import gzip
import json
import logging
import threading
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.errors import ContractError, ErrorCode
from shared.models import describe_errors
from shared.signing import HEADER_ADMIN_KEY

from .service import Service, check_admin
from .settings import Settings
from .store import Conflict, StoreUnavailable
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

_service: Service | None = None
_settings: Settings | None = None
_service_lock = threading.Lock()


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
    return _service


def parse_body(req: func.HttpRequest, model: type[M]) -> M:
    return model.model_validate_json(req.get_body() or b"")


def request_path(req: func.HttpRequest) -> str:
    return urlsplit(req.url).path


def json_response(body, status: int = 200) -> func.HttpResponse:
    text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
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


def compressed(req: func.HttpRequest, resp: func.HttpResponse) -> func.HttpResponse:
    """`resp` gzipped when the client accepts gzip and the body is worth it; else unchanged."""
    body = resp.get_body()
    if len(body) < GZIP_MIN_BYTES or not accepts_gzip(req.headers.get("accept-encoding")):
        return resp
    return func.HttpResponse(gzip.compress(body, GZIP_LEVEL, mtime=0), status_code=resp.status_code,
                             mimetype=resp.mimetype, charset=resp.charset,
                             headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})


def error_response(err: ContractError) -> func.HttpResponse:
    return json_response(err.to_body(), err.http_status)


def handle(req: func.HttpRequest, action: Callable[[Service], BaseModel | dict], *, admin: bool = False,
           status: int = 200) -> func.HttpResponse:
    try:
        if len(req.get_body() or b"") > MAX_BODY_BYTES:
            raise ContractError(ErrorCode.OVERSIZED_MESSAGE, f"request body is larger than {MAX_BODY_BYTES} bytes")
        if admin:
            check_admin(get_settings(), req.headers.get(HEADER_ADMIN_KEY))
        return compressed(req, json_response(action(get_service()), status))
    except ContractError as err:
        log.info("refused %s %s: %s %s", req.method, request_path(req), err.code, err.message)
        return error_response(err)
    except ValidationError as exc:
        err = ContractError(ErrorCode.BAD_REQUEST, describe_errors(exc, 3))
        log.info("refused %s %s: %s", req.method, request_path(req), err.message)
        return error_response(err)
    except (StoreUnavailable, Conflict) as exc:
        log.warning("unavailable %s %s: %s", req.method, request_path(req), exc)
        return error_response(ContractError(ErrorCode.UNAVAILABLE, "storage is unavailable or busy; try again in a minute"))
