"""A shaped link on loopback: an asyncio TCP proxy that limits bandwidth, adds latency and
counts every byte both ways (headers included, since it sees the raw TCP stream).

One `Link` is one line between a branch and the cloud: its bandwidth is shared by every
connection through it, in each direction separately (down: cloud to branch; up: branch to
cloud), as a shop's single 3G/4G line is. Several listeners can share one link, so the
cloud's HTTP port and the queue port sit behind the same line.

The model, per direction: a chunk read from the sender occupies the line for
`len / bandwidth` seconds after the line is free, then arrives `latency` seconds later.
The sender is not read again until its chunk has left the line, so a fast sender is held
back the way TCP's flow control would hold it. A new connection pays one round trip
before its first byte is forwarded (the TCP handshake). Not modelled: TLS, packet loss,
slow start.

Usage: `python -m bench.shaper --listen 8080 --to 127.0.0.1:7071 [--down-kbit 2000 --up-kbit 1000 --latency-ms 150]`.
"""

import argparse
import asyncio
import threading
from dataclasses import dataclass

CHUNK = 16 * 1024


@dataclass
class Direction:
    """One way of the line: when it is free again, and what crossed it."""

    bits_per_second: float | None  # None: unlimited
    latency: float  # seconds, one way
    free_at: float = 0.0
    bytes: int = 0
    chunks: int = 0
    delayed_chunks: int = 0  # chunks that waited for the line or the latency

    def schedule(self, now: float, size: int) -> tuple[float, float]:
        """(when the chunk has left the line, when it arrives) for `size` bytes sent at `now`."""
        start = max(now, self.free_at)
        sent = start + (size * 8 / self.bits_per_second if self.bits_per_second else 0.0)
        self.free_at = sent
        self.bytes += size
        self.chunks += 1
        arrives = sent + self.latency
        if arrives > now:
            self.delayed_chunks += 1
        return sent, arrives


@dataclass
class Link:
    down: Direction
    up: Direction
    connections: int = 0

    @classmethod
    def shaped(cls, down_kbit: float | None = 2000, up_kbit: float | None = 1000, latency_ms: float = 150) -> "Link":
        return cls(Direction(down_kbit * 1000 if down_kbit else None, latency_ms / 1000),
                   Direction(up_kbit * 1000 if up_kbit else None, latency_ms / 1000))

    @classmethod
    def loopback(cls) -> "Link":
        """No limits; still counts bytes."""
        return cls.shaped(None, None, 0)

    @property
    def round_trip(self) -> float:
        return self.down.latency + self.up.latency

    def reset_counts(self) -> None:
        for d in (self.down, self.up):
            d.bytes = d.chunks = d.delayed_chunks = 0
        self.connections = 0

    def counts(self) -> dict:
        return {"down": self.down.bytes, "up": self.up.bytes, "connections": self.connections}


# The event loop keeps only weak references to tasks: a connection left idle (a client's kept
# connection nobody closed) would otherwise have its pumps collected mid-wait, with a warning.
_LIVE: set[asyncio.Task] = set()


def _kept(task: asyncio.Task) -> asyncio.Task:
    _LIVE.add(task)
    task.add_done_callback(_LIVE.discard)
    return task


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: Direction) -> None:
    loop = asyncio.get_running_loop()
    in_flight: asyncio.Queue = asyncio.Queue()

    async def deliver():
        while True:
            item = await in_flight.get()
            if item is None:
                break
            arrives, data = item
            delay = arrives - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()

    deliverer = _kept(asyncio.create_task(deliver()))
    try:
        while data := await reader.read(CHUNK):
            sent, arrives = way.schedule(loop.time(), len(data))
            in_flight.put_nowait((arrives, data))
            if (wait := sent - loop.time()) > 0:
                await asyncio.sleep(wait)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        in_flight.put_nowait(None)
        try:
            await deliverer
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass


class Shaper:
    """Listeners on loopback, each forwarding to one upstream through one shared Link.

    Runs its own event loop in a thread so synchronous benchmark code can use it.
    """

    def __init__(self, link: Link):
        self.link = link
        self.loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="shaper")
        self._thread.start()

    def forward(self, upstream_host: str, upstream_port: int, listen_port: int = 0) -> int:
        """Listen on 127.0.0.1 (`listen_port`, 0: the OS chooses) and forward to upstream; returns the port."""

        async def handle(client_r, client_w):
            _kept(asyncio.current_task())
            self.link.connections += 1
            try:
                await asyncio.sleep(self.link.round_trip)  # the TCP handshake
                up_r, up_w = await asyncio.open_connection(upstream_host, upstream_port)
            except (OSError, asyncio.CancelledError):  # upstream gone, or the shaper closing
                client_w.close()
                return
            try:
                await asyncio.gather(_pump(client_r, up_w, self.link.up), _pump(up_r, client_w, self.link.down),
                                     return_exceptions=True)
            except asyncio.CancelledError:
                pass  # the shaper is closing
            finally:
                for w in (up_w, client_w):
                    w.close()

        async def start():
            server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result()

    def close(self) -> None:
        async def stop():
            for s in self._servers:
                s.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--to", required=True, help="upstream host:port")
    parser.add_argument("--down-kbit", type=float, default=2000)
    parser.add_argument("--up-kbit", type=float, default=1000)
    parser.add_argument("--latency-ms", type=float, default=150)
    args = parser.parse_args()
    host, port = args.to.rsplit(":", 1)
    shaper = Shaper(Link.shaped(args.down_kbit, args.up_kbit, args.latency_ms))
    shaper.forward(host, int(port), args.listen)
    print(f"127.0.0.1:{args.listen} -> {args.to}; Ctrl+C to stop")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print(shaper.link.counts())
        shaper.close()


if __name__ == "__main__":
    main()
