"""branchsync-cloud: run the Functions app in function_app/ without Azure Functions Core Tools.

It loads function_app.py by path and serves the functions registered on its FunctionApp,
so nothing is declared twice: HTTP triggers through Starlette on uvicorn at
/<routePrefix>/<route> (refusing, as the Functions host does, a route in its reserved admin/runtime
space), queue triggers through a poller thread per trigger that honours
host.json (batchSize, newBatchThreshold, visibilityTimeout, maxDequeueCount with a
`<queue>-poison` queue, maxPollingInterval), base64-decodes messages and binds them for the
trigger's dataType as the Functions host does, and runs timer triggers on their NCRONTAB
schedule (`%SETTING%` resolved). Usage: `branchsync-cloud --port 7071` (or `python -m headoffice.devhost`).
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import importlib.util
import inspect
import json
import logging
import os
import random
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import azure.functions as func
from azure.functions.timer import TimerRequest
import uvicorn
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import LinearRetry, QueueClient
from croniter import croniter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_APP_DIR = ROOT / "function_app"
HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
# How long a received message stays invisible while its function runs (the Functions host
# uses 10 minutes and renews; functions here take well under a second). If the host dies
# mid-message, the message comes back after this.
LEASE_SECONDS = 30
# The Functions host's own request limits (100 MB body, 4,096-character URL): the dev host
# refuses beyond them as Azure would, and never buffers more than that of a request.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
MAX_URL_CHARS = 4096
# The Functions host keeps these for its own APIs and puts any HTTP function whose route
# starts with one of them (lower-cased, slashes trimmed, routePrefix not counted, so
# "administration" too) in error with this message (ScriptHost.ValidateHttpFunction).
RESERVED_ROUTE_PREFIXES = ("admin", "runtime")
RESERVED_ROUTE_MESSAGE = "The specified route conflicts with one or more built in routes."

log = logging.getLogger("branchsync.devhost")


# --- host.json -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueOptions:
    # Defaults are the Functions host's own.
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()


def parse_timespan(value) -> float:
    """Seconds from a host.json TimeSpan ("00:00:05", "1.02:00:00", "00:00:00.500") or milliseconds."""
    if isinstance(value, (int, float)):
        return float(value) / 1000
    m = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", str(value).strip())
    if not m:
        raise ValueError(f"host.json: {value!r} is not a TimeSpan like 00:00:05")
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def read_host_json(app_dir: Path) -> HostConfig:
    path = app_dir / "host.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    ext = data.get("extensions", {})
    q = ext.get("queues", {})
    batch = int(q.get("batchSize", 16))
    opts = QueueOptions(
        batch_size=max(1, min(batch, 32)),  # a receive returns at most 32 messages
        new_batch_threshold=int(q.get("newBatchThreshold", batch // 2)),
        max_dequeue_count=int(q.get("maxDequeueCount", 5)),
        visibility_timeout=parse_timespan(q.get("visibilityTimeout", "00:00:00")),
        max_polling_interval=parse_timespan(q.get("maxPollingInterval", "00:01:00")),
        message_encoding=str(q.get("messageEncoding", "base64")).lower(),
    )
    return HostConfig(route_prefix=str(ext.get("http", {}).get("routePrefix", "api")).strip("/"), queues=opts)


# --- loading the app -----------------------------------------------------------------------


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: frozenset[str] | None  # None: every method
    param: str
    fn: object
    pattern: re.Pattern


@dataclass(frozen=True)
class QueueFunction:
    name: str
    queue: str
    connection: str
    param: str
    fn: object
    data_type: str = "string"  # "binary" or "string" (also what an undeclared dataType binds as)


def queue_data_type(trigger: dict, function_name: str) -> str:
    """The trigger's declared dataType as the host binds it; undeclared is a string binding."""
    declared = trigger.get("dataType")
    if declared is None:
        return "string"
    name = str(getattr(declared, "name", declared)).lower()
    if name not in ("string", "binary"):
        raise SystemExit(f"function {function_name}: a Python queue trigger takes dataType string or binary, not {name}")
    return name


def bind_queue_body(body: bytes, data_type: str) -> "bytes | str":
    """What the host hands the worker for a (base64-decoded) message body.

    binary: the bytes as they are. string (or no dataType): the body decoded as strict UTF-8
    (the queue extension's ToValidUTF8String, a throwing UTF8Encoding), so bytes that are not
    UTF-8 fail the binding ("Unable to translate bytes ... to Unicode") before the function
    runs; the delivery counts as failed, and after maxDequeueCount the message is poisoned.
    """
    if data_type == "binary":
        return body
    try:
        return body.decode("utf-8", "strict")
    except UnicodeDecodeError as exc:
        raise QueueBindingError(f"Exception binding parameter: unable to translate bytes [{body[exc.start]:02X}] at "
                                f"index {exc.start} from specified code page to Unicode (dataType string)") from exc


class QueueBindingError(Exception):
    """The host could not bind a message to the function's parameter; the function did not run."""


def load_app(app_dir: Path) -> func.FunctionApp:
    """Import app_dir/function_app.py as `func start` would: with app_dir first on sys.path."""
    app_dir = app_dir.resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    name = "function_app" if "function_app" not in sys.modules else f"function_app_{abs(hash(str(app_dir)))}"
    spec = importlib.util.spec_from_file_location(name, app_dir / "function_app.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no function_app.py in {app_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
    if len(apps) != 1:
        raise SystemExit(f"{app_dir / 'function_app.py'} must define exactly one FunctionApp, found {len(apps)}")
    return apps[0]


def compile_route(template: str) -> re.Pattern:
    """An Azure route template ({name}, {name?}, {name:constraint}, {*rest}) as a regex over the raw path."""
    regex = ""
    for segment in template.strip("/").split("/"):
        m = re.fullmatch(r"\{(\*?)([A-Za-z_]\w*)(?::[^}?]*)?(\?)?\}", segment)
        if not m:
            regex += "/" + re.escape(segment)
            continue
        star, name, optional = m.groups()
        body = rf"(?P<{name}>.+)" if star else rf"(?P<{name}>[^/]+)"
        regex += rf"(?:/{body})?" if optional else "/" + body
    return re.compile(regex + r"/?\Z", re.IGNORECASE)  # \Z: "$" would also match before a final newline


def check_route(function_name: str, route: str | None) -> str:
    """The route the host serves (the function's name when none is given); refuses a reserved one."""
    route = route if route and route.strip() else function_name
    if route.strip("/").lower().startswith(RESERVED_ROUTE_PREFIXES):
        raise SystemExit(f"function {function_name} (route {route!r}): {RESERVED_ROUTE_MESSAGE}")
    return route


def discover(app: func.FunctionApp) -> tuple[list[HttpFunction], list[QueueFunction]]:
    http, queues = [], []
    for f in app.get_functions():
        trigger = f.get_trigger().get_dict_repr()
        extra = [b for b in f.get_bindings_dict()["bindings"] if b["name"] != trigger["name"] and b.get("type") != "http"]
        if extra:
            raise SystemExit(f"function {f.get_function_name()}: the dev host runs triggers only, not bindings {extra}")
        kind = trigger["type"]
        if kind == "httpTrigger":
            route = check_route(f.get_function_name(), trigger.get("route"))
            methods = trigger.get("methods")
            http.append(HttpFunction(
                name=f.get_function_name(), route=route,
                methods=frozenset(str(getattr(m, "value", m)).upper() for m in methods) if methods else None,
                param=trigger["name"], fn=f.get_user_function(), pattern=compile_route(route),
            ))
        elif kind == "queueTrigger":
            queues.append(QueueFunction(f.get_function_name(), trigger["queueName"], trigger.get("connection") or "AzureWebJobsStorage",
                                        trigger["name"], f.get_user_function(),
                                        queue_data_type(trigger, f.get_function_name())))
        elif kind == "timerTrigger":
            continue  # run by TimerScheduler (discover_timers)
        else:
            raise SystemExit(f"function {f.get_function_name()}: the dev host has no {kind}")
    return http, queues


def _call(fn, **kwargs):
    result = fn(**kwargs)
    return asyncio.run(result) if inspect.iscoroutine(result) else result


# --- HTTP ----------------------------------------------------------------------------------


class HttpGateway:
    """Starlette endpoint that turns a request into func.HttpRequest and the answer back."""

    def __init__(self, functions: list[HttpFunction], route_prefix: str):
        self.functions = functions
        self.prefix = "/" + route_prefix if route_prefix else ""

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        # Match on the raw (still percent-encoded) path so an encoded "/" stays inside its segment.
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        match = self._match(path, request.method)
        if match is None:
            return JSONResponse({"error": {"code": "not_found", "message": f"no function answers {request.method} {request.url.path}"}},
                                status_code=404)
        target, route_params = match
        if len(raw) + len(request.scope.get("query_string") or b"") > MAX_URL_CHARS:
            return _refusal(414, "bad_request", f"the URL is longer than {MAX_URL_CHARS} characters")
        body = await _bounded_body(request)
        if body is None:
            return _refusal(413, "oversized_message", f"the request body is larger than {MAX_REQUEST_BYTES} bytes")
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        req = func.HttpRequest(request.method, str(request.url), headers=headers, params=dict(request.query_params),
                               route_params=route_params, body=body)
        try:
            resp = self._convert(await run_in_threadpool(_call, target.fn, **{target.param: req}))
        except Exception:
            log.exception("function %s failed on %s %s", target.name, request.method, path)
            # As the Functions host does: a bare 500, nothing of the exception leaks to the caller.
            resp = Response(status_code=500)
        log.info("http %s %s -> function %s: %d (%.1f ms)", request.method, path, target.name, resp.status_code,
                 (time.perf_counter() - started) * 1000)
        return resp

    def _match(self, path: str, method: str) -> tuple[HttpFunction, dict[str, str]] | None:
        if not path.lower().startswith(self.prefix.lower()):
            return None
        rest = path[len(self.prefix):] or "/"
        for f in self.functions:
            m = f.pattern.match(rest)
            if m and (f.methods is None or method.upper() in f.methods):
                return f, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        return None

    @staticmethod
    def _convert(resp) -> Response:
        if resp is None:
            return Response(status_code=204)
        headers = {k: v for k, v in resp.headers.items()}
        if not any(k.lower() == "content-type" for k in headers) and resp.mimetype:
            headers["content-type"] = f"{resp.mimetype}; charset={resp.charset}" if resp.charset else resp.mimetype
        return Response(content=resp.get_body(), status_code=resp.status_code, headers=headers)


def _refusal(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _bounded_body(request: Request) -> bytes | None:
    """The body, or None once it is (or says it is) larger than MAX_REQUEST_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 15 or int(declared) > MAX_REQUEST_BYTES):
        return None
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_REQUEST_BYTES:
            return None
    return bytes(body)


# --- queues --------------------------------------------------------------------------------


class DevQueueMessage(func.QueueMessage):
    """func.QueueMessage with the delivery details the Functions host fills in."""

    def __init__(self, *, dequeue_count: int | None = None, insertion_time=None, expiration_time=None, **kwargs):
        super().__init__(**kwargs)
        self._dequeue_count = dequeue_count
        self._insertion_time = insertion_time
        self._expiration_time = expiration_time

    @property
    def dequeue_count(self):
        return self._dequeue_count

    @property
    def insertion_time(self):
        return self._insertion_time

    @property
    def expiration_time(self):
        return self._expiration_time


def connection_string(name: str, env: Mapping[str, str]) -> str:
    # The Functions host resolves a connection name as the setting itself or AzureWebJobs<name>.
    value = env.get(name) or env.get(f"AzureWebJobs{name}")
    if not value:
        raise SystemExit(f"queue trigger connection {name!r}: set the environment variable {name} to a storage connection string")
    return value


# How the Functions host polls a queue (the storage queue extension's QueueListener and its
# RandomizedExponentialBackoffStrategy, Azure/azure-sdk-for-net, sdk/storage/
# Microsoft.Azure.WebJobs.Extensions.Storage.Queues): receive batchSize messages; when some
# came, start them all, wait until no more than newBatchThreshold are still running and
# receive again at once; when none came, wait, 100 ms if messages were found since the last
# wait, else 100 ms plus a doubling step (randomised by +-20 %), up to maxPollingInterval.
MIN_POLLING_INTERVAL = 0.1
BACKOFF_RANDOMISATION = 0.2


class PollBackoff:
    """The wait before the next receive when the last one found nothing."""

    def __init__(self, maximum: float, rng: random.Random | None = None):
        self.maximum = max(MIN_POLLING_INTERVAL, maximum)
        self.rng = rng or random.Random()
        self.current = 0.0
        self._exponent = 0

    def next_delay(self, found_since_last_wait: bool) -> float:
        if found_since_last_wait:
            self.current, self._exponent = MIN_POLLING_INTERVAL, 1
        elif self.current != self.maximum:
            step = 0.0
            if self._exponent > 0:
                spread = self.rng.uniform(1 - BACKOFF_RANDOMISATION, 1 + BACKOFF_RANDOMISATION)
                step = spread * 2 ** (self._exponent - 1) * MIN_POLLING_INTERVAL
            if MIN_POLLING_INTERVAL + step < self.maximum:
                self.current = MIN_POLLING_INTERVAL + step
                self._exponent += 1
            else:
                self.current = self.maximum
        return self.current


def worker_threads(env: Mapping[str, str]) -> int | None:
    """Threads that run a sync Python function at once: PYTHON_THREADPOOL_THREAD_COUNT, else (Python
    3.9+) ThreadPoolExecutor's default, min(32, cores + 4) (learn.microsoft.com, "Improve throughput
    performance of Python apps in Azure Functions", max workers within a language worker process)."""
    value = env.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return max(1, min(32, int(value))) if value.strip().isdigit() else None


class QueuePoller:
    """Receives batches for one queue trigger and runs the function on each message, as the host does."""

    def __init__(self, target: QueueFunction, options: QueueOptions, conn: str, stop: threading.Event,
                 env: Mapping[str, str] | None = None, rng: random.Random | None = None):
        self.target = target
        self.options = options
        self.stop = stop
        # The SDK's default retry waits 15 s and more between attempts; this loop polls again
        # anyway, so retry briefly and keep startup and shutdown quick when storage is down.
        retry = LinearRetry(backoff=0.3, retry_total=2, random_jitter_range=0.1)
        self.queue = QueueClient.from_connection_string(conn, target.queue, retry_policy=retry, connection_timeout=5)
        self.poison = QueueClient.from_connection_string(conn, f"{target.queue}-poison", retry_policy=retry, connection_timeout=5)
        self.ready = False
        self.backoff = PollBackoff(options.max_polling_interval, rng)
        # What the loop did, latest last: ("messages", how many a receive found) or ("idle", the
        # seconds it then waited).
        self.history: deque[tuple[str, float]] = deque(maxlen=1000)
        self._in_flight = 0
        self._cond = threading.Condition()
        # Up to batchSize + newBatchThreshold invocations are handed over; the worker runs as
        # many at once as its thread pool has threads.
        self._pool = ThreadPoolExecutor(max_workers=worker_threads(os.environ if env is None else env),
                                        thread_name_prefix=f"queue-{target.queue}")
        self.thread = threading.Thread(target=self._run, name=f"poller-{target.queue}", daemon=True)

    def ensure_queues(self) -> bool:
        try:
            for client in (self.queue, self.poison):
                try:
                    client.create_queue()
                except ResourceExistsError:
                    pass
        except AzureError as exc:
            log.warning("cannot create queue %s yet: %s", self.target.queue, type(exc).__name__)
            return False
        self.ready = True
        return True

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        found_since_wait = False
        while not self.stop.is_set():
            if not self.ready and not self.ensure_queues():
                self.stop.wait(min(2.0, self.options.max_polling_interval or 2.0))
                continue
            try:
                messages = list(self.queue.receive_messages(messages_per_page=self.options.batch_size,
                                                            max_messages=self.options.batch_size, visibility_timeout=LEASE_SECONDS))
            except AzureError as exc:
                log.warning("receive from %s failed: %s", self.target.queue, type(exc).__name__)
                messages = []
            if not messages:
                delay = self.backoff.next_delay(found_since_wait)
                found_since_wait = False
                self.history.append(("idle", delay))
                self.stop.wait(delay)
                continue
            self.history.append(("messages", len(messages)))
            found_since_wait = True
            for message in messages:
                with self._cond:
                    self._in_flight += 1
                self._pool.submit(self._process, message).add_done_callback(self._done)
            # The next batch once no more than newBatchThreshold are still running; then at once.
            with self._cond:
                while self._in_flight > self.options.new_batch_threshold and not self.stop.is_set():
                    self._cond.wait(0.2)

    def _done(self, _future) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _process(self, message) -> None:
        count = message.dequeue_count or 1
        name, started = self.target.name, time.perf_counter()
        if count > self.options.max_dequeue_count:
            # Delivered too often already (e.g. the host died while running it): do not run it again.
            try:
                self._to_poison(message, count)
            except AzureError as exc:
                log.warning("queue %s message %s: could not move it to poison (%s)", self.target.queue, message.id, type(exc).__name__)
            return
        try:
            body = bind_queue_body(self._decode(message.content), self.target.data_type)
            msg = DevQueueMessage(id=message.id, body=body, pop_receipt=message.pop_receipt, dequeue_count=count,
                                  insertion_time=message.inserted_on, expiration_time=message.expires_on)
            _call(self.target.fn, **{self.target.param: msg})
        except Exception:
            log.exception("queue %s message %s: function %s failed (delivery %d of %d)", self.target.queue, message.id,
                          name, count, self.options.max_dequeue_count)
            try:
                if count >= self.options.max_dequeue_count:
                    self._to_poison(message, count)
                else:
                    self.queue.update_message(message, pop_receipt=message.pop_receipt,
                                              visibility_timeout=int(self.options.visibility_timeout))
            except AzureError as exc:
                log.warning("queue %s message %s: could not release it (%s); it returns after its lease",
                            self.target.queue, message.id, type(exc).__name__)
            return
        log.info("queue %s message %s -> function %s succeeded (%.1f ms)", self.target.queue, message.id, name,
                 (time.perf_counter() - started) * 1000)
        try:
            self.queue.delete_message(message, pop_receipt=message.pop_receipt)
        except AzureError as exc:
            log.warning("queue %s message %s: delete failed (%s); it will be delivered again", self.target.queue,
                        message.id, type(exc).__name__)

    def _decode(self, content) -> bytes:
        text = content if isinstance(content, str) else bytes(content).decode("utf-8")
        if self.options.message_encoding == "none":
            return text.encode("utf-8")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("queue message is not base64 (host.json messageEncoding is base64)") from exc

    def _to_poison(self, message, count: int) -> None:
        # The same text, then the delete: a crash in between leaves a copy, never a loss.
        self.poison.send_message(message.content)
        self.queue.delete_message(message, pop_receipt=message.pop_receipt)
        log.warning("queue %s message %s moved to %s-poison after %d deliveries", self.target.queue, message.id,
                    self.target.queue, count)


# --- the host ------------------------------------------------------------------------------


# --- timers ----------------------------------------------------------------------------------
#
# Timer triggers run on their NCRONTAB schedule, read as the Functions host reads it: a
# `%NAME%` in the schedule is the app setting NAME, six fields {second} {minute} {hour}
# {day} {month} {day-of-week}, in UTC. A schedule that does not resolve or parse leaves that
# one function in error (logged) while the others run, as on Azure. Unlike the host, the dev
# host keeps no schedule status in storage, so a run missed while it was down is not caught
# up; `fire()` runs a timer function at once, and so does `POST /admin/functions/{name}` as on
# the host (202, the run in the background).

_SETTING_RE = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class TimerFunction:
    name: str
    schedule: str  # as declared: an NCRONTAB expression, or %SETTING% naming one
    param: str
    fn: object
    run_on_startup: bool = False


class IndexedApp:
    """An app's functions, built once: FunctionApp.get_functions() refuses to run twice, and
    both discover() and discover_timers() read them."""

    def __init__(self, app: func.FunctionApp):
        self._functions = app.get_functions()

    def get_functions(self) -> list:
        return self._functions


def discover_timers(app: "func.FunctionApp | IndexedApp") -> list[TimerFunction]:
    timers = []
    for f in app.get_functions():
        trigger = f.get_trigger().get_dict_repr()
        if trigger["type"] == "timerTrigger":
            timers.append(TimerFunction(f.get_function_name(), str(trigger["schedule"]), trigger["name"],
                                        f.get_user_function(), bool(trigger.get("runOnStartup"))))
    return timers


def resolve_settings(value: str, env: Mapping[str, str]) -> str:
    """`%NAME%` replaced by the app setting NAME; a missing one is an error, as on the host."""
    def setting(m: re.Match) -> str:
        if not env.get(m.group(1)):
            raise ValueError(f"'%{m.group(1)}%' does not resolve to a value: set the app setting {m.group(1)}")
        return env[m.group(1)]

    return _SETTING_RE.sub(setting, value)


def parse_schedule(expression: str) -> str:
    """An NCRONTAB expression with six fields, checked; the TimeSpan form (hh:mm:ss) is refused,
    since Consumption and Flex Consumption plans do not run it either."""
    fields = expression.split()
    if len(fields) != 6 or not croniter.is_valid(" ".join(fields), second_at_beginning=True):
        raise ValueError(f"schedule {expression!r} is not an NCRONTAB expression of six fields "
                         "{second} {minute} {hour} {day} {month} {day-of-week}, e.g. '0 30 2 * * *'")
    return " ".join(fields)


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The first moment strictly after `after` (UTC) that the six-field schedule names."""
    return croniter(schedule, after.astimezone(timezone.utc), second_at_beginning=True).get_next(datetime)


class TimerScheduler:
    """One thread that sleeps until the next due timer function and runs it."""

    def __init__(self, timers: list[TimerFunction], env: Mapping[str, str], stop: threading.Event):
        self.timers = {t.name: t for t in timers}
        self.schedules: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        for t in timers:
            try:
                self.schedules[t.name] = parse_schedule(resolve_settings(t.schedule, env))
            except ValueError as exc:
                self.errors[t.name] = str(exc)
        self.stop = stop
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for name, error in self.errors.items():
            log.error("timer function %s is in error and will not run: %s", name, error)
        for name, schedule in self.schedules.items():
            log.info("timer function %s: schedule %s (UTC), next run %s", name, schedule,
                     next_occurrence(schedule, datetime.now(timezone.utc)).isoformat())
        if self.schedules:
            self._thread = threading.Thread(target=self._run, name="devhost-timers", daemon=True)
            self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def fire(self, name: str, past_due: bool = False) -> None:
        """Run timer function `name` now; its exceptions are logged, as the host logs a failed run."""
        target = self.timers[name]
        try:
            _call(target.fn, **{target.param: TimerRequest(past_due=past_due)})
        except Exception:
            log.exception("timer function %s failed", name)

    async def invoke_route(self, request: Request) -> Response:
        """POST /admin/functions/{name} with a JSON body ({} or {"input": ...}): the host's way to run a
        non-HTTP function by hand. 202 at once, the run goes on in the background. As under `func start`,
        no master key is asked for locally; on Azure the x-functions-key header must carry it."""
        wanted = request.path_params["name"].lower()  # function names are case-insensitive on the host
        name = next((n for n in self.timers if n.lower() == wanted), None)
        if name is None or name in self.errors:
            problem = f"function {name} is in error: {self.errors[name]}" if name else f"no timer function {wanted}"
            return JSONResponse({"error": {"code": "not_found", "message": problem}}, status_code=404)
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"error": {"code": "bad_request", "message": 'the body must be a JSON object: {} or {"input": ""}'}},
                                status_code=400)
        threading.Thread(target=self.fire, args=(name,), name=f"devhost-invoke-{name}", daemon=True).start()
        log.info("timer function %s invoked through /admin/functions", name)
        return Response(status_code=202)

    def _run(self) -> None:
        now = datetime.now(timezone.utc)
        due = {name: next_occurrence(s, now) for name, s in self.schedules.items()}
        for name in self.schedules:
            if self.timers[name].run_on_startup:
                self.fire(name)
        while not self.stop.is_set():
            name = min(due, key=due.get)
            # Wake at least once a minute, so a clock change is noticed.
            wait = (due[name] - datetime.now(timezone.utc)).total_seconds()
            if wait > 0:
                self.stop.wait(min(wait, 60))
                continue
            self.fire(name)
            due[name] = next_occurrence(self.schedules[name], datetime.now(timezone.utc))


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # uvicorn re-raises a caught SIGTERM after shutting down, which would kill the process
        # before the pollers finish their messages; handle both signals as a plain graceful stop.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            scheme = "https" if self.config.ssl_certfile else "http"
            print(f"branchsync-cloud listening on {scheme}://{self.config.host}:{self.config.port}", flush=True)


class DevHost:
    def __init__(self, app_dir: Path = DEFAULT_APP_DIR, host: str = "127.0.0.1", port: int = 7071,
                 env: Mapping[str, str] | None = None, ssl_certfile: str | None = None,
                 ssl_keyfile: str | None = None):
        self.app_dir = Path(app_dir)
        self.env = os.environ if env is None else env
        self.config = read_host_json(self.app_dir)
        app = IndexedApp(load_app(self.app_dir))
        self.http_functions, self.queue_functions = discover(app)
        self.stop_event = threading.Event()
        self.timers = TimerScheduler(discover_timers(app), self.env, self.stop_event)
        gateway = HttpGateway(self.http_functions, self.config.route_prefix)
        asgi = Starlette(routes=[Route("/admin/functions/{name}", self.timers.invoke_route, methods=["POST"]),
                                 Route("/{path:path}", gateway.handle, methods=HTTP_METHODS)])
        # HTTPS when given a certificate (the branch's TLS tests), as Azure always serves it.
        self.server = _Server(uvicorn.Config(asgi, host=host, port=port, lifespan="off", access_log=False, log_config=None,
                                             ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile))
        self.pollers = [
            QueuePoller(q, self.config.queues, connection_string(q.connection, self.env), self.stop_event, self.env)
            for q in self.queue_functions
        ]
        self._thread: threading.Thread | None = None

    def _start_pollers(self) -> None:
        for p in self.pollers:
            p.ensure_queues()  # before serving, so a healthy host has its queues
            p.start()
        for f in self.http_functions:
            log.info("http function %s: %s /%s/%s", f.name, ",".join(sorted(f.methods or ["*"])), self.config.route_prefix, f.route)
        for q in self.queue_functions:
            log.info("queue function %s: queue %s (connection %s)", q.name, q.queue, q.connection)
        self.timers.start()

    def _stop_pollers(self) -> None:
        self.stop_event.set()
        for p in self.pollers:
            p.join(timeout=30)
        self.timers.join(timeout=30)

    def serve(self) -> None:
        """Run until SIGINT/SIGTERM (uvicorn handles them in the main thread), then stop polling."""
        self._start_pollers()
        try:
            self.server.run()
        finally:
            self._stop_pollers()
            log.info("branchsync-cloud stopped")

    def start(self, timeout: float = 30) -> "DevHost":
        """Serve from a background thread (tests); returns once the port is listening."""
        self._start_pollers()
        self._thread = threading.Thread(target=self.server.run, name="devhost-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the dev host did not start listening")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._stop_pollers()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="branchsync-cloud", description="Run function_app/ locally: HTTP on loopback, queue triggers by polling.")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port (default 7071, as func start)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--app-dir", type=Path, default=DEFAULT_APP_DIR, help="folder holding function_app.py and host.json")
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM); needs --ssl-keyfile")
    parser.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    # The SDKs log every request at INFO; keep our own lines readable.
    logging.getLogger("azure").setLevel(logging.WARNING)
    DevHost(args.app_dir, args.host, args.port, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile).serve()


if __name__ == "__main__":
    main()
