"""Replay protection: the pure bucket rules, and the nonce store through Service against Azurite."""

from datetime import timedelta

import pytest

from branchsync_cloud import nonces
from branchsync_cloud.service import Service
from shared.errors import ContractError, ErrorCode
from shared.limits import CLOCK_SKEW_SECONDS
from shared.signing import canonical_request, mac, sign_request
from tests.cloud.test_service import enroll, pull, signed_pull

HOUR = nonces.BUCKET_SECONDS


def signed(secret, clock, at=None, name="dhaka-1", query=None):
    query = query or {"cursor": "0"}
    return sign_request(secret, name, "GET", "/api/pull", query, b"", (at or clock.now).timestamp()), query


# --- the pure rules ------------------------------------------------------------------------


def test_a_request_belongs_to_the_hour_of_its_own_signed_time():
    assert nonces.hour_bucket(10 * HOUR) == nonces.hour_bucket(11 * HOUR - 1) == 10
    assert nonces.bucket_of_table(nonces.table_name(493_512)) == 493_512
    assert nonces.bucket_of_table("nonces12") is None and nonces.bucket_of_table("sales") is None


def test_only_hours_wholly_outside_the_window_with_one_spare_are_stale():
    now = 100 * HOUR + 10  # the window reaches back into hour 99
    assert nonces.stale_buckets([96, 97, 98, 99, 100, 101], now) == [96, 97]
    # Once the window has left hour 99 entirely, 98 goes too (99 stays as the spare).
    assert nonces.stale_buckets([98, 99, 100], 100 * HOUR + CLOCK_SKEW_SECONDS + 1) == [98]


# --- through the service, against Azurite --------------------------------------------------


def test_replaying_the_exact_same_signed_request_is_refused(service, clock):
    secret = enroll(service)
    headers, query = signed(secret, clock)
    signed_pull(service, headers, query)
    clock.now += timedelta(seconds=30)
    with pytest.raises(ContractError) as err:
        signed_pull(service, headers, query)
    assert err.value.code == ErrorCode.REPLAYED and err.value.http_status == 401
    assert "replay" in err.value.message and "sync again" in err.value.message


def test_a_freshly_signed_request_after_a_refused_replay_passes(service, clock):
    secret = enroll(service)
    headers, query = signed(secret, clock)
    signed_pull(service, headers, query)
    with pytest.raises(ContractError):
        signed_pull(service, headers, query)
    assert pull(service, "dhaka-1", secret, clock, cursor=0).branch == "dhaka-1"


def test_a_replay_after_the_hour_turned_still_meets_its_nonce(service, clock):
    secret = enroll(service)
    clock.now = clock.now.replace(minute=59, second=50, microsecond=0)
    headers, query = signed(secret, clock)
    signed_pull(service, headers, query)
    clock.now += timedelta(seconds=CLOCK_SKEW_SECONDS - 10)  # the next hour, still inside the window
    with pytest.raises(ContractError) as err:
        signed_pull(service, headers, query)
    assert err.value.code == ErrorCode.REPLAYED


def test_the_same_nonce_from_two_branches_is_two_requests(service, clock):
    a, b = enroll(service, "dhaka-1"), enroll(service, "dhaka-2")
    ha, query = signed(a, clock, name="dhaka-1")
    nonce, at = ha["X-Branchsync-Nonce"], ha["X-Branchsync-Time"]
    hb = {"X-Branchsync-Branch": "dhaka-2", "X-Branchsync-Time": at, "X-Branchsync-Nonce": nonce,
          "X-Branchsync-Signature": mac(b, canonical_request("GET", "/api/pull", query, at, nonce, b"")).hex()}
    signed_pull(service, ha, query)
    assert signed_pull(service, hb, query).branch == "dhaka-2"


@pytest.mark.parametrize("offset, word", [(CLOCK_SKEW_SECONDS + 60, "ahead of"), (-CLOCK_SKEW_SECONDS - 60, "behind")])
def test_a_request_outside_the_skew_window_is_refused_naming_the_branch_clock(service, clock, offset, word):
    secret = enroll(service)
    clock.now = clock.now.replace(microsecond=0)  # whole seconds, as the signed time is
    headers, query = signed(secret, clock, at=clock.now + timedelta(seconds=offset))
    with pytest.raises(ContractError) as err:
        signed_pull(service, headers, query)
    assert err.value.code == ErrorCode.CLOCK_SKEW
    assert f"branch clock is {abs(offset)} s {word} the cloud" in err.value.message


def test_a_nonce_that_is_not_hex_is_refused_before_it_reaches_storage(service, clock):
    secret = enroll(service)
    headers, query = signed(secret, clock)
    headers["X-Branchsync-Nonce"] = "../../x"
    with pytest.raises(ContractError) as err:
        signed_pull(service, headers, query)
    assert err.value.code == ErrorCode.UNAUTHENTICATED and "X-Branchsync-Nonce" in err.value.message


def test_nonce_tables_of_hours_outside_the_window_are_dropped_lazily(service, store, clock):
    secret = enroll(service)
    start = clock.now
    pull(service, "dhaka-1", secret, clock, cursor=0)
    first = nonces.hour_bucket(int(start.timestamp()))
    assert first in store.nonce_buckets()
    clock.now = start + timedelta(hours=3)
    later = Service(store, service.settings, clock)  # another instance, a few hours on
    pull(later, "dhaka-1", secret, clock, cursor=0)
    buckets = store.nonce_buckets()
    assert first not in buckets and nonces.hour_bucket(int(clock.now.timestamp())) in buckets
