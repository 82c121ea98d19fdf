"""The till's HTTP server: a Starlette app over the branch store, served by uvicorn on 127.0.0.1.

Routes are thin adapters: each parses the request, calls the store (the same methods the
CLI's `sale add`, `sale void`, `sale refund`, `sale list`, `shift`, `catalog search` and
`status` call) and turns
the answer or a BadSaleInput into JSON. An ASGI middleware in front of everything refuses
a Host other than the till's own address (DNS rebinding) and any state-changing request
without the per-launch token, and sets headers that keep the page out of other sites'
frames; no CORS headers are ever sent, so no other origin can read an answer.

A sync runs in a background thread under the same lock as the scheduled sync
(SyncEngine.run), so the two never run at once, and the store's push watermark means
neither sends a sale the other sent. It starts from the page's "sync now" key and, unless
the till was opened with --no-auto-push, after each sale or void once SQLite committed it
(autopush.PushPlan decides when); a sale's answer never waits for it.
"""

import json
import logging
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import logs
from .. import status as branch_status
from ..cashiers import LOCKED_FOR, CashierLocked
from ..errors import BadInput, BadSaleInput, BranchSyncError, CloudUnreachable, SyncAlreadyRunning
from ..sale_entry import QuantityNeedsConfirmation
from ..store import Store, utcnow
from . import autopush, core

# Next to this module, in the source tree, the installed package and the executable's unpack folder.
STATIC = Path(__file__).resolve().parent / "static"
TOKEN_PLACEHOLDER = "__TILL_TOKEN__"
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware: the Host check, the token check and the security headers."""

    def __init__(self, app, *, port: int, token: str):
        self.app, self.port, self.token = app, port, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not core.host_allowed(headers.get("host"), self.port):
            return await _refuse(send, 421, "this till answers only at its own address, 127.0.0.1")
        if scope["method"] not in core.SAFE_METHODS and not core.token_ok(headers.get(core.TOKEN_HEADER), self.token):
            return await _refuse(send, 403, "this request does not come from the till page; reload the till")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *HEADERS]})
    await send({"type": "http.response.body", "body": body})


class SignInFirst(BadInput):
    """A request that records something, made with nobody signed in at a till that has cashiers."""

    code = "sign_in_first"


class BackgroundSync:
    """Runs one sync at a time in a thread; `run_sync` does the work (SyncEngine.run in the till).

    `sale_recorded` asks for a sync after each sale or void and returns at once; when to run
    is PushPlan's decision (coalesced, backing off while the cloud cannot be reached), and a
    timer thread starts a sync whose pause is over.
    """

    def __init__(self, run_sync: Callable[[], "str | autopush.Note"], *, auto_push: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self._run_sync = run_sync
        self.auto_push = auto_push
        self._clock = clock
        self._plan = autopush.PushPlan()
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._mutex = threading.Lock()
        self._note: autopush.Note | None = None

    @property
    def running(self) -> bool:
        return self._plan.running

    @property
    def note(self) -> dict | None:
        """The status line's {"code", "text", ...} (see autopush.describe)."""
        with self._mutex:
            return autopush.describe(self._plan, self._note, self._clock())

    def start(self) -> bool:
        """The cashier's "sync now": start a sync unless one of this till's is running; True when one was started."""
        with self._mutex:
            if not self._plan.sync_now():
                return False
            self._spawn()
            return True

    def sale_recorded(self) -> None:
        """A sale or void committed: push it when the plan allows; never waits for the sync."""
        if not self.auto_push:
            return
        with self._mutex:
            if self._plan.sale_recorded(self._clock()):
                self._spawn()
            else:
                self._arm()

    def wait(self, timeout: float | None = None) -> None:
        """Until no sync of this till's runs (a sync started right after another included)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (thread := self._thread) is not None and thread.is_alive():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                return

    def close(self) -> None:
        """No more deferred syncs (the till is closing); a running one finishes."""
        with self._mutex:
            self.auto_push = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _spawn(self) -> None:  # with the mutex held
        self._thread = threading.Thread(target=self._work, name="till-sync", daemon=True)
        self._thread.start()

    def _arm(self) -> None:  # with the mutex held
        wake = self._plan.wake_at()
        if not self.auto_push or wake is None or self._timer is not None:
            return
        self._timer = threading.Timer(max(0.0, wake - self._clock()), self._wake)
        self._timer.daemon = True
        self._timer.start()

    def _wake(self) -> None:
        with self._mutex:
            self._timer = None
            if self.auto_push and self._plan.due(self._clock()):
                self._spawn()
            else:
                self._arm()

    def _work(self) -> None:
        outcome = autopush.Outcome.FAILED
        try:
            done = self._run_sync()
            note = done if isinstance(done, autopush.Note) else autopush.Note("done", done)
            outcome = autopush.Outcome.DONE
        except CloudUnreachable as exc:
            note, outcome = autopush.Note("unreachable", str(exc), error=exc.code), autopush.Outcome.UNREACHABLE
        except SyncAlreadyRunning as exc:
            note, outcome = autopush.Note("busy", str(exc), error=exc.code), autopush.Outcome.BUSY
        except BranchSyncError as exc:
            note = autopush.Note("failed", str(exc), error=exc.code)
        except Exception as exc:  # shown on the page; the store keeps the error too
            note = autopush.Note("failed", f"sync failed: {type(exc).__name__}: {exc}")
        with self._mutex:
            self._note = note
            if self._plan.finished(self._clock(), outcome):
                self._spawn()
            else:
                self._arm()


def engine_sync(store: Store, client_options: dict | None = None) -> Callable[[], autopush.Note]:
    """A sync of `store` through the real engine: takes the sync lock, so never concurrent
    with a scheduled `branchsync sync`."""
    def run() -> autopush.Note:
        from ..cloud_client import CloudClient
        from ..sync import SyncEngine

        identity = store.identity()
        log = logging.getLogger(logs.LOGGER_NAME)
        logs.forget_secret(log, identity.secret)
        with CloudClient.for_identity(identity, **(client_options or {})) as client:
            report = SyncEngine(store, client, on_secret=lambda s: logs.forget_secret(log, s)).run()
        return autopush.Note("pushed", f"sync done: pushed {report.pushed} sales", count=report.pushed)
    return run


def _json_body(request_body: bytes) -> dict:
    try:
        body = json.loads(request_body or b"{}")
    except ValueError:
        raise BadSaleInput("the request is not JSON; reload the till") from None
    if not isinstance(body, dict):
        raise BadSaleInput("the request is not a JSON object; reload the till")
    return body


def _limit(request: Request, most: int) -> int:
    try:
        return min(most, max(1, int(request.query_params.get("limit", "20"))))
    except ValueError:
        raise BadSaleInput("limit must be a whole number") from None


class Session:
    """Who is signed in at this till: kept in the server, so a page reload keeps the cashier
    signed in, and a restart of the till asks again."""

    def __init__(self):
        self.cashier: str | None = None


def create_app(store: Store, *, port: int, token: str, sync: BackgroundSync,
               clock: Callable[[], datetime] = utcnow) -> Starlette:
    """The till's routes; `clock` tells the time where a rule needs it (the PIN lock)."""
    index_html = (STATIC / "index.html").read_text(encoding="utf-8").replace(TOKEN_PLACEHOLDER, token)

    def page(_request: Request) -> Response:
        return HTMLResponse(index_html)

    def receipt_page(_request: Request) -> Response:
        return HTMLResponse((STATIC / "receipt.html").read_text(encoding="utf-8"))

    def search(request: Request) -> Response:
        text = request.query_params.get("q", "")
        limit = _limit(request, 50)
        return JSONResponse({"products": [core.product_view(p) for p in store.search_products(text, limit)]})

    session = Session()

    def cashier() -> str | None:
        """The signed-in cashier; once cashiers exist, nothing is recorded without one."""
        if session.cashier is None and store.cashier_names():
            raise SignInFirst("sign in first: type your name and PIN")
        return session.cashier

    def by_code(request: Request) -> Response:
        code = request.path_params["code"]
        match = store.lookup(code)
        if match is None:
            return JSONResponse({"error": f"unknown code {code}: nothing was added"}, status_code=404)
        return JSONResponse(core.match_view(match))

    def quantity(request: Request) -> Response:
        """A quantity typed for a cart line, checked by the sale's own rule for its product's unit."""
        _match, qty = store.quantity(request.query_params.get("sku", ""), request.query_params.get("q", ""))
        return JSONResponse({"qty": format(qty, "f")})

    async def record(request: Request) -> Response:
        body = _json_body(await request.body())
        key = core.client_key(body.get("key"))
        items = core.cart_items(body.get("lines"))
        discount = core.discount_of(body.get("discount"), "the sale discount")
        payments = core.cart_payments(body)
        who = cashier()
        done = await run_in_threadpool(lambda: store.record(items, None, None, key, payments=payments, discount=discount,
                                                            confirmed=body.get("confirmed") is True, cashier=who))
        sync.sale_recorded()  # committed: push it in the background, never waiting here
        return JSONResponse({"sale": core.sale_view(done.sale, done.generation)}, status_code=201)

    async def quote(request: Request) -> Response:
        """The cart priced by the sale's own rules (discounts, VAT, total); records nothing."""
        body = _json_body(await request.body())
        items = core.cart_items(body.get("lines"))
        discount = core.discount_of(body.get("discount"), "the sale discount")
        priced = await run_in_threadpool(store.quote, items, discount)
        return JSONResponse({"quote": core.quote_view(priced)})

    async def void(request: Request) -> Response:
        body = _json_body(await request.body())
        reason = core.void_reason(body.get("reason"))
        who = cashier()
        done = await run_in_threadpool(store.void, request.path_params["number"], None, reason, who)
        sync.sale_recorded()
        return JSONResponse({"sale": core.sale_view(done.sale, done.generation)}, status_code=201)

    async def refund(request: Request) -> Response:
        body = _json_body(await request.body())
        key = core.client_key(body.get("key"))
        returns = core.refund_returns(body.get("returns"))
        payments = core.cart_payments({"payments": body.get("payments", [])})
        reason = core.optional_reason(body.get("reason"))
        who = cashier()
        done = await run_in_threadpool(lambda: store.refund(request.path_params["number"], returns, payments,
                                                            cashier=who, reason=reason, client_key=key))
        sync.sale_recorded()
        return JSONResponse({"sale": core.sale_view(done.sale, done.generation)}, status_code=201)

    async def refund_quote(request: Request) -> Response:
        """What a refund with these returns pays back, by the refund's own rule; records nothing."""
        returns = core.refund_returns(_json_body(await request.body()).get("returns"))
        lines = await run_in_threadpool(store.refund_quote, request.path_params["number"], returns)
        return JSONResponse({"quote": core.refund_quote_view(lines)})

    def current_shift(_request: Request) -> Response:
        return JSONResponse({"shift": core.shift_view(store.current_shift())})

    async def open_shift(request: Request) -> Response:
        body = _json_body(await request.body())
        opening = core.money(body.get("float"), "the opening float")
        who = cashier()
        shift = await run_in_threadpool(store.open_shift, who, opening)
        return JSONResponse({"shift": core.shift_view(shift)}, status_code=201)

    async def close_shift(request: Request) -> Response:
        body = _json_body(await request.body())
        counted = core.money(body.get("counted"), "the counted cash")
        who = cashier()
        report = await run_in_threadpool(store.close_shift, counted, who)
        sync.sale_recorded()
        return JSONResponse({"report": core.z_view(report)})

    def receipt_header() -> dict:
        """What a printed receipt or Z report heads with: the branch and the shop's settings (one row each,
        not the status, which counts every sale)."""
        branch = store.branch_name()
        return {"branch": branch, "shop": core.shop_view(store.settings(), branch)}

    def z_report(request: Request) -> Response:
        report = store.shift_report(request.path_params["id"])
        if report is None:
            return JSONResponse({"error": "no closed shift with that id"}, status_code=404)
        return JSONResponse({"report": core.z_view(report), **receipt_header()})

    def held(_request: Request) -> Response:
        return JSONResponse({"held": [core.held_view(h) for h in store.held_carts()]})

    async def hold(request: Request) -> Response:
        body = _json_body(await request.body())
        raw = core.cart_lines(body.get("lines"))
        items = core.cart_items(raw)
        discount = core.discount_of(body.get("discount"), "the sale discount")
        who = cashier()
        done = await run_in_threadpool(lambda: store.hold_cart(items, raw, who, discount=discount,
                                                               raw_discount=body.get("discount")))
        return JSONResponse({"held": core.held_view(done)}, status_code=201)

    async def resume(request: Request) -> Response:
        """Take a held cart back: its lines as a scan would add them, at today's catalog prices,
        and the sale discount it was held with."""
        try:
            held_id = int(request.path_params["id"])
        except ValueError:
            raise BadSaleInput("no such held cart") from None
        cashier()
        taken = await run_in_threadpool(store.take_held_cart, held_id)
        lines = []
        for raw in taken.items:
            match = store.lookup(raw.get("code") or raw["sku"])
            if match is None:
                continue  # gone from the catalog since: the cashier sees one line fewer
            view = core.match_view(match)
            if "qty" in raw:
                view["qty"] = raw["qty"]
            view["held"] = raw  # the line as it was held: its price override and discount too
            lines.append(view)
        return JSONResponse({"lines": lines, "discount": taken.discount, "held": core.held_view(taken)})

    def who_is_in(_request: Request) -> Response:
        return JSONResponse({"cashier": session.cashier, "required": bool(store.cashier_names())})

    async def sign_in(request: Request) -> Response:
        name, pin = core.sign_in_fields(_json_body(await request.body()))
        try:
            found = await run_in_threadpool(store.sign_in, name, pin, clock())
        except CashierLocked as exc:
            return JSONResponse(core.locked_view(exc), status_code=423)
        if found is None:
            tries = store.sign_in_tries(name)
            if tries.locked(clock()):  # this wrong PIN was the last one allowed
                return JSONResponse(core.locked_view(CashierLocked(" ".join(name.split()), tries.locked_until)),
                                    status_code=423)
            left = tries.left
            return JSONResponse({"error": f"wrong name or PIN; try again ({left} more before this name is locked "
                                          f"for {LOCKED_FOR.seconds // 60} minutes)", "left": left}, status_code=401)
        session.cashier = found
        return JSONResponse({"cashier": found})

    def sign_out(_request: Request) -> Response:
        session.cashier = None
        return JSONResponse({"cashier": None, "required": bool(store.cashier_names())})

    def recent(request: Request) -> Response:
        limit = _limit(request, 200)
        return JSONResponse({"sales": [core.record_view(r) for r in store.recent_sales(limit)]})

    def one_sale(request: Request) -> Response:
        record = store.get_sale(request.path_params["number"])
        if record is None:
            return JSONResponse({"error": "no such sale number"}, status_code=404)
        return JSONResponse({"sale": core.record_view(record), **receipt_header()})

    def status(_request: Request) -> Response:
        return JSONResponse(core.status_view(branch_status.read(store, lifetime=False), syncing=sync.running,
                                             sync_note=sync.note, time_zone=store.settings()["time_zone"]))

    def sync_now(_request: Request) -> Response:
        started = sync.start()
        return JSONResponse({"started": started, "syncing": True}, status_code=202)

    async def bad_input(_request: Request, exc: Exception) -> Response:
        if isinstance(exc, QuantityNeedsConfirmation):
            return JSONResponse({"error": str(exc), "confirm": True}, status_code=409)
        if isinstance(exc, SignInFirst):
            return JSONResponse({"error": str(exc), "sign_in": True}, status_code=401)
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def failed(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=500 if not isinstance(exc, BadSaleInput) else 400)

    routes = [
        Route("/", page),
        Route("/receipt", receipt_page),
        Route("/favicon.ico", lambda _r: Response(status_code=204)),
        Route("/api/products", search),
        Route("/api/products/code/{code}", by_code),
        Route("/api/quantity", quantity),
        Route("/api/sales", recent, methods=["GET"]),
        Route("/api/sales", record, methods=["POST"]),
        Route("/api/sales/{number}", one_sale),
        Route("/api/sales/{number}/void", void, methods=["POST"]),
        Route("/api/sales/{number}/refund", refund, methods=["POST"]),
        Route("/api/sales/{number}/refund/quote", refund_quote, methods=["POST"]),
        Route("/api/quote", quote, methods=["POST"]),
        Route("/api/shift", current_shift, methods=["GET"]),
        Route("/api/shift/open", open_shift, methods=["POST"]),
        Route("/api/shift/close", close_shift, methods=["POST"]),
        Route("/api/shift/{id}/z", z_report, methods=["GET"]),
        Route("/api/held", held, methods=["GET"]),
        Route("/api/held", hold, methods=["POST"]),
        Route("/api/held/{id}/resume", resume, methods=["POST"]),
        Route("/api/session", who_is_in, methods=["GET"]),
        Route("/api/session", sign_in, methods=["POST"]),
        Route("/api/session/out", sign_out, methods=["POST"]),
        Route("/api/status", status),
        Route("/api/sync", sync_now, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={BadInput: bad_input, BranchSyncError: failed})
    app.add_middleware(Guard, port=port, token=token)
    return app


def bind(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 only (port 0: any free port).

    Made with proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted
    sockets whose proto says TCP, and with Nagle on, each answer's body waits ~40 ms for the
    browser's delayed ACK of its headers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def open_window(url: str, kiosk_printing: bool = False) -> None:
    """Edge in app mode where installed, else the default browser."""
    import os
    import shutil
    import subprocess
    import webbrowser

    command = core.browser_command(url, windows=sys.platform == "win32", env=os.environ,
                                   exists=os.path.exists, which=shutil.which, kiosk_printing=kiosk_printing)
    if command is None:
        webbrowser.open(url)
        return
    subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serve(store: Store, *, port: int = 0, open_browser: bool = True, client_options: dict | None = None,
          announce: Callable[[str], None] | None = None, auto_push: bool = True) -> None:
    """Serve the till until stopped (Ctrl+C, or the process is ended)."""
    import uvicorn

    token = secrets.token_urlsafe(32)
    sock = bind(port)
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    sync = BackgroundSync(engine_sync(store, client_options), auto_push=auto_push)
    app = create_app(store, port=port, token=token, sync=sync)
    # log_config=None: uvicorn's own logging writes to sys.stderr, which is None in a
    # windowed executable; errors go to the branch log instead.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    logging.getLogger(logs.LOGGER_NAME).info(f"till serving at {url}")
    if announce is not None:
        announce(url)
    if open_browser:
        kiosk = store.settings()["till.kiosk_printing"] == "yes"
        threading.Timer(0.3, open_window, args=(url, kiosk)).start()
    try:
        server.run(sockets=[sock])
    finally:
        sync.close()
