"""The shaped link: bytes cross intact and are counted exactly; the schedule applies bandwidth and latency.

The proxy runs for real on loopback in front of a real echo server. No timing is measured:
the shaping is checked on the schedule the link computes, from times given to it.
"""

import os
import socket
import threading

import pytest

from bench.shaper import Direction, Link, Shaper


@pytest.fixture
def echo_server():
    """A TCP server that reads until the client is done sending, then answers with what it read, twice."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                got = b""
                while data := conn.recv(65536):
                    got += data
                conn.sendall(got + got)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while data := s.recv(65536):
            got += data
    return got


def test_bytes_cross_the_proxy_intact_both_ways_and_are_counted_exactly(echo_server):
    shaper = Shaper(Link.shaped(down_kbit=100_000, up_kbit=100_000, latency_ms=1))
    try:
        port = shaper.forward("127.0.0.1", echo_server)
        payload = os.urandom(300_000)
        assert exchange(port, payload) == payload + payload
        assert shaper.link.counts() == {"down": 600_000, "up": 300_000, "connections": 1}
    finally:
        shaper.close()


def test_two_listeners_share_one_link_and_its_counts(echo_server):
    shaper = Shaper(Link.loopback())
    try:
        first, second = shaper.forward("127.0.0.1", echo_server), shaper.forward("127.0.0.1", echo_server)
        assert exchange(first, b"abc") == b"abcabc"
        assert exchange(second, "বাংলা".encode()) == "বাংলা".encode() * 2
        assert shaper.link.counts() == {"down": 6 + 30, "up": 3 + 15, "connections": 2}
    finally:
        shaper.close()


def test_a_chunk_takes_its_size_over_the_bandwidth_then_the_latency():
    way = Direction(bits_per_second=1_000_000, latency=0.150)
    sent, arrives = way.schedule(now=10.0, size=125_000)  # 1 Mbit at 1 Mbit/s
    assert (sent, arrives) == pytest.approx((11.0, 11.150))
    assert way.delayed_chunks == 1


def test_a_chunk_waits_for_the_line_to_be_free_while_another_is_on_it():
    way = Direction(bits_per_second=8_000, latency=0.5)
    way.schedule(now=0.0, size=1_000)  # on the line until 1.0
    sent, arrives = way.schedule(now=0.25, size=500)
    assert (sent, arrives) == pytest.approx((1.5, 2.0))
    assert (way.bytes, way.chunks) == (1_500, 2)


def test_an_unlimited_link_delays_nothing_but_still_counts():
    way = Link.loopback().down
    assert way.schedule(now=5.0, size=10**9) == (5.0, 5.0)
    assert (way.bytes, way.delayed_chunks) == (10**9, 0)
