"""Answers go gzipped to clients that accept gzip, over the real dev host; others get them as they are."""

import gzip
import json
import time

import httpx
import pytest

from branchsync_cloud import http
from branchsync_cloud.http import accepts_gzip, gzipped
from shared.enrollment import decode_code
from shared.signing import sign_request


@pytest.mark.parametrize("header, accepted", [
    ("gzip, deflate", True), ("deflate, gzip;q=0.5", True), ("*", True), ("br;q=1, *;q=0.1", True),
    ("gzip;q=0", False), ("identity", False), ("", False), (None, False), ("gzip;q=zero", False),
])
def test_accept_encoding_admits_gzip_only_when_it_names_gzip_or_star_with_a_q_above_zero(header, accepted):
    assert accepts_gzip(header) is accepted


def enrolled(cloud, name):
    admin = {"X-Branchsync-Admin-Key": cloud.env["BRANCHSYNC_ADMIN_KEY"]}
    products = [{"sku": f"GZ-{name}-{i}", "name": f"চাল {i} Rice 5kg", "price": 9000 + i, "barcode": f"890{i:09d}"}
                for i in range(300)]
    assert httpx.post(f"{cloud.url}/api/manage/catalog", json={"products": products}, headers=admin).status_code == 200
    created = httpx.post(f"{cloud.url}/api/manage/branches", json={"name": name}, headers=admin).json()
    code = decode_code(created["enrollment_code"])
    return httpx.post(f"{code.url}/api/enroll", json={"token": code.token}).json()["secret"]


def test_an_answer_is_gzipped_by_libdeflate_the_same_every_time_and_no_larger_than_by_zlib():
    entries = [{"version": i, "sku": f"SKU-{i:05d}", "deleted": False,
                "product": {"sku": f"SKU-{i:05d}", "name": f"চাল {i} kg rice", "price": 5000 + i * 7, "barcode": f"{890000000000 + i}"}}
               for i in range(2000)]
    body = json.dumps({"catalog": {"entries": entries}}, ensure_ascii=False).encode()
    assert http.deflate is not None  # installed with the app (requirements.txt), as on the Functions host
    out = gzipped(body)
    assert gzip.decompress(out) == body and gzipped(body) == out
    assert len(out) <= len(gzip.compress(body, http.GZIP_LEVEL, mtime=0))


def pull(cloud, name, secret, encoding):
    query = {"cursor": "0"}
    headers = {**sign_request(secret, name, "GET", "/api/pull", query, b"", time.time()), "Accept-Encoding": encoding}
    return httpx.get(f"{cloud.url}/api/pull", params=query, headers=headers, timeout=30)


@pytest.mark.azurite
def test_a_catalog_pull_comes_gzipped_when_accepted_and_decodes_to_the_same_answer(cloud, branch_name):
    secret = enrolled(cloud, branch_name)
    plain, zipped = pull(cloud, branch_name, secret, "identity"), pull(cloud, branch_name, secret, "gzip")
    assert plain.status_code == zipped.status_code == 200
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.num_bytes_downloaded * 3 < plain.num_bytes_downloaded
    a, b = plain.json(), zipped.json()
    assert a["catalog"] == b["catalog"] and len(a["catalog"]["entries"]) >= 300
