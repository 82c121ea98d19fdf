"""The branch's one I/O seam to the cloud: signed HTTP calls and the sales queue.

`CloudClient` does three things: `pull` (signed GET /api/pull), `enroll` (POST
/api/enroll) and `push` (one message, the way the pull said: onto the sales queue with the
SAS from the pull, or through the cloud's signed POST /api/push when the cloud takes pushes
that way or the queue cannot be reached from here, e.g. a proxy blocks its host). Tests
swap the HTTP side with `transport=httpx.MockTransport(...)` and the queue side with
`queue_sender=...`; nothing else in the branch talks to the network.

Transient failures (connection errors, timeouts, 5xx, throttling) are retried a few times
with exponential backoff; then, and for every other failure, SDK and httpx errors are
mapped to the tree in `branch_client.errors`:
- cannot connect, times out, keeps answering 5xx -> CloudUnreachable;
- a 4xx `{"error": {"code", "message"}}`         -> CloudRefused(code, message);
- an answer that does not fit the contract       -> CloudBadAnswer.
"""

import importlib
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_none

from shared import limits
from shared.errors import ErrorCode
from shared.models import (PUSH_WAYS, EnrollAnswer, EnrollRequest, ErrorBody, PullAnswer, PushAccepted, PushRequest,
                           PushRoute, QueueAccess)
from shared.signing import sign_request

from .errors import REFUSALS, BadEnrollmentCode, CloudBadAnswer, CloudRefused, CloudUnreachable
from .version import version

HTTP_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
QUEUE_CONNECT_TIMEOUT = 5
QUEUE_READ_TIMEOUT = 20
ATTEMPTS = 3
BACKOFF = 0.5  # seconds; waits 0.5, 1, 2, ... between attempts

# (queue_url, sas_token, message text) -> None; raises on failure.
QueueSender = Callable[[str, str, str], None]
NEVER = datetime.max.replace(tzinfo=timezone.utc)

log = logging.getLogger("branchsync.cloud_client")


@dataclass(frozen=True)
class PushWay:
    """How the next message goes to the cloud, from the latest pull answer."""

    queue: QueueAccess | None  # the add-only queue SAS, when the cloud hands one out
    route: PushRoute | None  # the cloud's push route: the only way without a SAS, else the fallback

    @classmethod
    def of(cls, answer: PullAnswer) -> "PushWay":
        return cls(answer.push, answer.push_route)

    @property
    def expires_at(self) -> datetime:
        """When a new pull must renew this (the SAS's expiry; the route does not expire)."""
        return self.queue.expires_at if self.queue is not None else NEVER


def tls_context() -> ssl.SSLContext:
    """Verify the cloud's certificate against what the operating system trusts.

    The `truststore` package asks the Windows certificate store (CertGetCertificateChain;
    the macOS keychain, OpenSSL's default paths on Linux, where SSL_CERT_FILE and
    SSL_CERT_DIR count). A shop whose antivirus or proxy inspects HTTPS installs its root
    there, and certifi's bundle would refuse every sync through it. Without truststore
    (it needs Python 3.10+ and a standard ssl module), certifi's bundle is the fallback.
    """
    try:
        import truststore
    except ImportError:  # pragma: no cover - truststore is a dependency; kept for odd builds
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _untrusted_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure under an httpx error, if that is what it is."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class _ServerTrouble(Exception):
    """A 5xx or 429 answer: worth another try."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _transient(exc: BaseException) -> bool:
    if _untrusted_certificate(exc) is not None:  # the same certificate comes back on every try
        return False
    if isinstance(exc, (httpx.TransportError, _ServerTrouble)):
        return True
    try:
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        return status in (408, 429) or status >= 500
    return False


def _before_request_sent(exc: BaseException) -> bool:
    """Safe to retry a one-time call: the request never reached the cloud, or storage was down."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return True
    return isinstance(exc, _ServerTrouble) and exc.response.status_code == 503


class AzureQueueSender:
    """Puts `text` on the queue as it is (already base64: no encode policy). SDK retries are off.

    Kept-alive QueueClients for as long as the queue URL and SAS stay the same, one for each
    put under way at once (the sync has PUSH_SENDERS): a backlog's messages then cost a
    connection per sender, not one each (on a 150 ms mobile link a new connection is a 0.3 s
    round trip before the message can go). A client is taken for a put and handed back after
    it; a failed put's client is closed, so the next put starts on a fresh connection.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._idle: list = []

    @staticmethod
    def warm() -> threading.Thread:
        """Import the Storage SDK on a thread of its own, started before a push is due.

        The import is most of a sync's first put (0.3 s on a quiet PC, about 0.9 s on a busy
        one, longer from the one-file exe's archive); started when the sync begins, it runs
        while the pull goes out and the first messages are read and packed. The put that
        comes before it has finished waits on Python's import lock, so nothing is sent early.
        """
        def load() -> None:
            try:
                importlib.import_module("azure.core.credentials")
                importlib.import_module("azure.storage.queue")
            except Exception:  # a missing SDK is reported by the put itself
                pass

        thread = threading.Thread(target=load, name="queue-sdk", daemon=True)
        thread.start()
        return thread

    def __call__(self, queue_url: str, sas_token: str, text: str) -> None:
        key = (queue_url, sas_token)
        client = self._take(key)
        try:
            client.send_message(text)
        except BaseException:
            client.close()
            raise
        self._give_back(key, client)

    def _take(self, key: tuple[str, str]):
        with self._lock:
            if self._key != key:  # a new SAS (or queue): the clients of the old one go
                self._close_idle()
                self._key = key
            if self._idle:
                return self._idle.pop()
        from azure.core.credentials import AzureSasCredential
        from azure.storage.queue import QueueClient

        queue_url, sas_token = key
        return QueueClient.from_queue_url(
            queue_url, credential=AzureSasCredential(sas_token.lstrip("?")),
            retry_total=0, connection_timeout=QUEUE_CONNECT_TIMEOUT, read_timeout=QUEUE_READ_TIMEOUT)

    def _give_back(self, key: tuple[str, str], client) -> None:
        with self._lock:
            if self._key == key:
                self._idle.append(client)
                return
        client.close()  # the SAS changed (or the sender closed) while it was out

    def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            client.close()

    def close(self) -> None:
        with self._lock:
            self._close_idle()
            self._key = None


# A catalog page's cursor and `more`, as the cloud writes them after its entries (a JSON string
# cannot hold an unescaped quote, so these bytes are the page's own keys).
_NEXT_PAGE = re.compile(rb'"next_cursor"\s*:\s*(\d{1,16})\s*,\s*"more"\s*:\s*true')


class PullReply:
    """A pull's answer as it came, before it is validated (`answer()`)."""

    def __init__(self, client: "CloudClient", response: httpx.Response):
        self._client = client
        self._response = response

    def answer(self) -> PullAnswer:
        return self._client._pull_answer(self._response)

    def next_cursor(self) -> int | None:
        """The cursor of the page after this one, as the bytes name it, when more follow: a guess
        to ask ahead with, never trusted (the engine checks it against the validated page). None
        when the answer is not a success, says no more, or rotates the secret (the next request
        must be signed with the new one)."""
        if self._response.status_code >= 300:
            return None
        body = self._response.content
        at = body.rfind(b'"next_cursor"')
        found = _NEXT_PAGE.match(body, at) if at >= 0 else None
        if found is None or b'"rotate_secret"' in body:
            return None
        return int(found.group(1))


class CloudClient:
    """Calls to the cloud at `url` (the base URL from the enrollment code) as `branch`."""

    def __init__(self, url: str, branch: str | None = None, secret: str | None = None, *,
                 transport: httpx.BaseTransport | None = None, queue_sender: QueueSender | None = None,
                 timeout: httpx.Timeout | float = HTTP_TIMEOUT, attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 clock: Callable[[], float] = time.time):
        self.url = url.rstrip("/")
        self.branch = branch
        self._secret = secret
        self._http = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False,
                                  verify=tls_context() if transport is None else True,
                                  headers={"User-Agent": "branchsync-branch"})
        self._queue_sender = queue_sender or AzureQueueSender()
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._clock = clock
        # Set once the queue failed and the route took over: the rest of this run uses the route.
        self.queue_blocked: str | None = None

    @classmethod
    def for_identity(cls, identity, **options) -> "CloudClient":
        """A client for an enrolled branch (`branch_client.identity.Identity`)."""
        return cls(identity.cloud_url, identity.branch, identity.secret, **options)

    def use_secret(self, secret: str) -> None:
        """Sign from now on with `secret` (head office rotated it; see SyncEngine)."""
        self._secret = secret

    def warm_push(self) -> threading.Thread | None:
        """Sales are due: get the queue's SDK ready on a thread while the pull runs (None: nothing to warm)."""
        return self._queue_sender.warm() if isinstance(self._queue_sender, AzureQueueSender) else None

    def close(self) -> None:
        self._http.close()
        if isinstance(self._queue_sender, AzureQueueSender):
            self._queue_sender.close()

    def __enter__(self) -> "CloudClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the three calls ---------------------------------------------------------------------

    def pull(self, cursor: int, limit: int = limits.CATALOG_PAGE_WIDE_MAX, pending: int = 0) -> PullAnswer:
        """One catalog page of at most `limit` entries after `cursor`, the branch's applied_through and a push SAS.

        Above CATALOG_PAGE_MAX the request names both: `limit` at that bound, which every cloud
        takes, and `max_entries`, which a cloud older than wide pages ignores.
        """
        return self.fetch_pull(cursor, limit, pending).answer()

    def fetch_pull(self, cursor: int, limit: int = limits.CATALOG_PAGE_WIDE_MAX, pending: int = 0) -> "PullReply":
        """`pull` up to the answer's bytes: what `PullReply.answer()` then validates."""
        if not self.branch or not self._secret:
            raise ValueError("pull needs the branch name and secret")
        # pending and version let head office see each branch's backlog and release in its logs.
        query = {"cursor": str(int(cursor)), "limit": str(min(int(limit), limits.CATALOG_PAGE_MAX)),
                 "pending": str(int(pending)), "version": version(), "push": ",".join(PUSH_WAYS)}
        if limit > limits.CATALOG_PAGE_MAX:
            query["max_entries"] = str(int(limit))

        def attempt() -> httpx.Response:
            request = self._http.build_request("GET", self.url + "/api/pull", params=query)
            request.headers.update(sign_request(self._secret, self.branch, "GET", request.url.path, query, b"",
                                                self._clock()))
            return self._checked(self._http.send(request))

        return PullReply(self, self._retrying(attempt, _transient))

    def _pull_answer(self, response: httpx.Response) -> PullAnswer:
        answer = self._answer(response, PullAnswer)
        if answer.branch != self.branch:
            raise CloudBadAnswer(f"the cloud answered for branch {answer.branch!r}, not {self.branch!r}; "
                                 "check the enrollment (enroll again with --force)")
        return answer

    def enroll(self, token: str) -> EnrollAnswer:
        """Trade a one-time enrollment token for the branch name and secret."""
        try:
            body = EnrollRequest(token=token).model_dump_json().encode()
        except ValidationError:
            raise BadEnrollmentCode("the enrollment code carries a malformed token; ask head office for a new code") from None

        def attempt() -> httpx.Response:
            return self._checked(self._http.post(self.url + "/api/enroll", content=body,
                                                 headers={"Content-Type": "application/json"}))

        return self._answer(self._retrying(attempt, _before_request_sent), EnrollAnswer)

    def push(self, way: PushWay, text: str) -> None:
        """Hand one queue message to the cloud: onto the queue, or through the push route.

        The route is used when the cloud gives no SAS, and as the fallback when the queue
        fails from here (its host unreachable or refused, say by a proxy). A message the
        queue took although its answer was lost then arrives twice; the cloud applies once.
        """
        if way.queue is None or (self.queue_blocked and way.route is not None):
            if way.route is None:
                raise CloudBadAnswer("the cloud named no way to push; install the current branchsync")
            return self._post_push(way.route, [text])
        try:
            self.send(way.queue, text)
        except (CloudUnreachable, CloudRefused) as exc:
            if way.route is None:
                raise
            self.queue_blocked = str(exc)
            log.warning("the sales queue failed (%s); pushing through the cloud's push route instead", exc)
            self._post_push(way.route, [text])

    def _post_push(self, route: PushRoute, texts: list[str]) -> None:
        if not self.branch or not self._secret:
            raise ValueError("push needs the branch name and secret")
        body = PushRequest(messages=texts).model_dump_json().encode()
        if len(body) > route.max_body_bytes or len(texts) > route.max_messages:
            raise CloudRefused(ErrorCode.OVERSIZED_MESSAGE, f"a push of {len(texts)} messages ({len(body)} bytes) is beyond the "
                               f"cloud's push route limits; report this to head office", 413)

        def attempt() -> httpx.Response:
            # Signed afresh each time (a new nonce): a retry after a cut connection is a new request,
            # and if the cloud had queued the first one the copy is applied once all the same.
            request = self._http.build_request("POST", self.url + route.path, content=body,
                                               headers={"Content-Type": "application/json"})
            request.headers.update(sign_request(self._secret, self.branch, "POST", request.url.path, {}, body,
                                                self._clock()))
            return self._checked(self._http.send(request))

        accepted = self._answer(self._retrying(attempt, _transient), PushAccepted)
        if accepted.accepted != len(texts):
            raise CloudBadAnswer(f"the cloud took {accepted.accepted} of {len(texts)} messages; sync again")

    def send(self, access: QueueAccess, text: str) -> None:
        """Put one message on the sales queue. The cloud ignores copies, so a retry is harmless."""
        try:
            self._retrying(lambda: self._queue_sender(access.queue_url, access.sas_token, text), _transient)
        except CloudUnreachable:
            raise
        except Exception as exc:  # the SDK's refusals, mapped at the boundary
            raise self._queue_refusal(access, exc) from exc

    # --- plumbing --------------------------------------------------------------------------------

    def _retrying(self, call, retry_on):
        retrying = Retrying(stop=stop_after_attempt(self._attempts),
                            wait=wait_exponential(multiplier=self._backoff, max=8) if self._backoff else wait_none(),
                            retry=retry_if_exception(retry_on), reraise=True)
        try:
            return retrying(call)
        except httpx.TimeoutException as exc:
            raise CloudUnreachable(f"the cloud at {self._host()} did not answer in time ({type(exc).__name__}); "
                                   "check the internet connection and sync again; sales stay pending") from exc
        except httpx.TransportError as exc:
            untrusted = _untrusted_certificate(exc)
            if untrusted is not None:
                raise CloudUnreachable(
                    f"the cloud at {self._host()} presented a certificate this PC does not trust "
                    f"({untrusted.verify_message or untrusted.reason}); if the shop's antivirus or proxy inspects HTTPS, "
                    "its root certificate must be in the Windows certificate store (ask whoever installed it); "
                    "sales stay pending") from exc
            raise CloudUnreachable(f"cannot reach the cloud at {self._host()} ({type(exc).__name__}); "
                                   "check the internet connection and sync again; sales stay pending") from exc
        except _ServerTrouble as exc:
            status = exc.response.status_code
            detail = _error_detail(exc.response)
            raise CloudUnreachable(f"the cloud at {self._host()} is unavailable (HTTP {status}"
                                   f"{': ' + detail[1] if detail else ''}); sync again later; sales stay pending") from exc
        except Exception as exc:
            if _transient(exc):
                raise CloudUnreachable(f"cannot reach the sales queue ({type(exc).__name__}: {_first_line(exc)}); "
                                       "check the internet connection and sync again; sales stay pending") from exc
            raise

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 500 or response.status_code == 429:
            response.read()
            raise _ServerTrouble(response)
        return response

    def _answer(self, response: httpx.Response, model: type[BaseModel]):
        if response.status_code >= 300:
            detail = _error_detail(response)
            if detail and detail[0] in REFUSALS:
                raise REFUSALS[detail[0]](detail[1], response.status_code)
            if detail:
                raise CloudRefused(detail[0], detail[1], response.status_code)
            raise CloudRefused(f"http_{response.status_code}",
                               f"the server at {self._host()} answered HTTP {response.status_code} {response.reason_phrase}, "
                               "not a branchsync answer; check the cloud URL (enroll again with the right code)",
                               response.status_code)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise CloudBadAnswer(f"the cloud sent an answer this branchsync does not understand "
                                 f"({exc.error_count()} problems); install the current branchsync") from exc

    def _queue_refusal(self, access: QueueAccess, exc: Exception) -> CloudRefused:
        status = getattr(exc, "status_code", None)
        reason = getattr(exc, "error_code", None) or type(exc).__name__
        if status in (401, 403):
            hint = "the push permission may have expired or the PC clock is off; set the clock right and sync again"
        elif status == 413:
            hint = "the message is too large for the queue; report this to head office"
        else:
            hint = "sync again; if it keeps failing, report this to head office"
        return CloudRefused("queue_refused", f"the sales queue {urlsplit(access.queue_url).netloc} refused the message "
                                             f"({status or '-'} {reason}); {hint}", status)

    def _host(self) -> str:
        return urlsplit(self.url).netloc or self.url


def enroll(url: str, token: str, transport: httpx.BaseTransport | None = None, **options) -> EnrollAnswer:
    """Enroll at the cloud at `url` with a one-time `token`."""
    with CloudClient(url, transport=transport, **options) as client:
        return client.enroll(token)


def _error_detail(response: httpx.Response) -> tuple[str, str] | None:
    try:
        body = ErrorBody.model_validate_json(response.content)
    except (ValidationError, ValueError):
        return None
    return body.error.code, _first_line(body.error.message)


def _first_line(value) -> str:
    return " ".join(str(value).split())[:300]
