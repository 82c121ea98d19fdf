"""Replay protection through the real app on the dev host: a captured request sent again is a 401."""

import time

import httpx

from shared.signing import sign_request
from tests.devhost.test_devhost_monitoring import enrolled


def test_a_captured_pull_sent_again_is_refused_with_a_json_replayed_answer(cloud, branch_name):
    secret = enrolled(cloud, branch_name)
    query = {"cursor": "0"}
    headers = sign_request(secret, branch_name, "GET", "/api/pull", query, b"", time.time())
    first = httpx.get(f"{cloud.url}/api/pull", params=query, headers=headers, timeout=10)
    again = httpx.get(f"{cloud.url}/api/pull", params=query, headers=headers, timeout=10)
    assert first.status_code == 200, first.text
    assert again.status_code == 401 and again.json()["error"]["code"] == "replayed"
