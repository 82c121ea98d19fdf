"""A loopback TCP proxy that cuts HTTP connections on purpose.

    proxy = NetCut(target_port)              # listens on 127.0.0.1:<free port>
    proxy.add(Cut(match=lambda m, p: p.startswith("/api/pull"), skip=1, times=2, response_bytes=700))
    ...                                      # clients talk to proxy.url
    proxy.stop()

Each client connection gets its own upstream connection and two forwarding threads. The
client->server side recognises HTTP/1.1 request lines (clients here never pipeline: the next
request starts only after the previous answer) and asks the rules what to do with it:

- `response_bytes=None`: drop the connection before the request reaches the server;
- `response_bytes=N`: forward the request, let N bytes of the answer through, then close
  both sides (N=0: the server did the work, the client hears nothing).

A rule lets `skip` matching requests through first, then cuts the next `times` ones.
Bounded: at most `max_connections` at once, every socket has a timeout, and the proxy stops
itself after `lifetime` seconds.
"""

import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|DELETE|HEAD|PATCH|MERGE|OPTIONS) (\S+) HTTP/1\.[01]\r\n")


@dataclass
class Cut:
    match: Callable[[str, str], bool]
    skip: int = 0
    times: int = 1
    response_bytes: int | None = None
    seen: int = 0
    fired: int = 0

    def decide(self, method: str, path: str) -> bool:
        """True if this request is to be cut (counts matching requests)."""
        if not self.match(method, path):
            return False
        self.seen += 1
        if self.seen > self.skip and self.fired < self.times:
            self.fired += 1
            return True
        return False


@dataclass(eq=False)
class _Conn:
    client: socket.socket
    upstream: socket.socket
    budget: int | None = None  # bytes of answer still allowed through, None = unlimited
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class NetCut:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, max_connections: int = 64,
                 idle_timeout: float = 30.0, lifetime: float = 1800.0):
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.rules: list[Cut] = []
        self.requests: list[tuple[str, str]] = []
        self.cuts = 0
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name=f"netcut-{self.port}", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Cut) -> Cut:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def stop(self) -> None:
        self._stop.set()
        self._timer.cancel()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "NetCut":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- plumbing --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                full = len(self._conns) >= self.max_connections
            if full:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(self.idle_timeout)
            conn = _Conn(client, upstream)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._client_side, args=(conn,), daemon=True).start()
            threading.Thread(target=self._server_side, args=(conn,), daemon=True).start()

    def _forget(self, conn: _Conn) -> None:
        conn.close()
        with self._lock:
            self._conns.discard(conn)

    def _client_side(self, conn: _Conn) -> None:
        try:
            while not conn.closed:
                data = conn.client.recv(65536)
                if not data:
                    break
                found = _REQUEST_LINE.match(data)
                if found:
                    method, path = found.group(1).decode(), found.group(2).decode("latin-1")
                    with self._lock:
                        self.requests.append((method, path))
                        rule = next((r for r in self.rules if r.decide(method, path)), None)
                        if rule is not None:
                            self.cuts += 1
                    if rule is not None and rule.response_bytes is None:
                        break  # the request never reaches the server
                    with conn.lock:
                        conn.budget = rule.response_bytes if rule is not None else None
                conn.upstream.sendall(data)
        except OSError:
            pass
        self._forget(conn)

    def _server_side(self, conn: _Conn) -> None:
        try:
            while not conn.closed:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                with conn.lock:
                    budget = conn.budget
                    if budget is not None:
                        data = data[:budget]
                        conn.budget = budget - len(data)
                if data:
                    conn.client.sendall(data)
                if budget is not None and conn.budget == 0:
                    break
        except OSError:
            pass
        self._forget(conn)
