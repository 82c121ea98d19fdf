"""`make bench`'s own measuring parts."""

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from bench.bench import CountingTransport

BODY = ("পণ্য product " * 500).encode()


class _Gzipped(BaseHTTPRequestHandler):
    def do_GET(self):
        data = gzip.compress(BODY)
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_counting_transport_counts_a_gzipped_answer_as_sent_and_hands_it_on_decoded_once():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gzipped)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        transport = CountingTransport()
        with httpx.Client(transport=transport) as client:
            answer = client.get(f"http://127.0.0.1:{server.server_port}/")
        assert answer.content == BODY
        assert transport.bytes == len(gzip.compress(BODY)) < len(BODY)
    finally:
        server.shutdown()
