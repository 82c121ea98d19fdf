"""A test certificate authority and a real HTTPS server on loopback for the branch's TLS tests.

The CA is made here (the `cryptography` package) and signs a certificate for 127.0.0.1
and localhost. Tests then add the CA "the way the OS would": on Linux through OpenSSL's
default verify file, SSL_CERT_FILE, which the OS trust store (truststore) reads.
"""

import datetime as dt
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_pki(folder: Path, common_name: str = "branchsync test CA") -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return pki


class HttpsServer:
    """A real HTTPS server on 127.0.0.1 that answers through an httpx-style handler (e.g. FakeCloud.handler),
    passing its answer on as it is (a handler answers with an unread stream)."""

    def __init__(self, pki: Pki, handler):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = httpx.Request(self.command, f"https://127.0.0.1:{outer.port}{self.path}",
                                        headers=list(self.headers.items()), content=body)
                response = handler(request)
                body = b"".join(response.iter_raw())  # as sent: still gzipped if the cloud gzipped it
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.cert_file, pki.key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def __enter__(self) -> "HttpsServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_https_cloud(workdir: Path, connection_string: str, admin_key: str, pki: Pki):
    """The dev host as a process serving HTTPS with `pki`'s certificate; returns (process, url)."""
    import os
    import subprocess
    import sys
    import time

    from headoffice import stand_ins

    workdir.mkdir(parents=True, exist_ok=True)
    port = stand_ins.free_port()
    log = workdir / f"https-cloud-{port}.log"
    env = {**os.environ, "AzureWebJobsStorage": connection_string, "BRANCHSYNC_ADMIN_KEY": admin_key}
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "headoffice.devhost", "--port", str(port),
                                 "--ssl-certfile", str(pki.cert_file), "--ssl-keyfile", str(pki.key_file)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                **({"start_new_session": True} if os.name == "posix" else {}))
    url = f"https://localhost:{port}"  # a DNS name: what every platform verifier matches best
    trust = ssl.create_default_context(cafile=str(pki.ca_file))
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            stand_ins._stop(proc)
            raise RuntimeError(f"the HTTPS dev host did not start; see {log}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/api/health", verify=trust, timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def stop_https_cloud(proc) -> None:
    from headoffice import stand_ins

    stand_ins._stop(proc)


if __name__ == "__main__":  # python -m tests.branch_client.tls DIR: a CA and server certificate for CI
    import sys

    made = make_pki(Path(sys.argv[1]))
    print(made.ca_file)
