import pytest

from shared.errors import ContractError, ErrorCode
from shared.signing import HEADER_SIGNATURE, HEADER_TIME, new_secret, sign_request, verify_request

NOW = 1_800_000_000


def test_a_signed_request_verifies_with_the_same_secret():
    secret = new_secret()
    headers = sign_request(secret, "b1", "GET", "/api/pull", {"cursor": "5", "limit": "1000"}, b"", NOW)
    verify_request(secret, headers, "GET", "/api/pull", {"limit": "1000", "cursor": "5"}, b"", NOW + 10)


@pytest.mark.parametrize("change", ["path", "query", "body", "method", "secret"])
def test_changing_any_signed_part_breaks_the_signature(change):
    secret = new_secret()
    headers = sign_request(secret, "b1", "POST", "/api/pull", {"cursor": "5"}, b"{}", NOW)
    args = dict(secret=secret, method="POST", path="/api/pull", query={"cursor": "5"}, body=b"{}")
    args[change] = {"path": "/api/admin", "query": {"cursor": "6"}, "body": b"{ }", "method": "GET", "secret": new_secret()}[change]
    with pytest.raises(ContractError) as err:
        verify_request(args["secret"], headers, args["method"], args["path"], args["query"], args["body"], NOW)
    assert err.value.code == ErrorCode.BAD_SIGNATURE


def test_a_request_from_a_clock_far_off_is_refused_and_told_to_fix_the_clock():
    secret = new_secret()
    headers = sign_request(secret, "b1", "GET", "/api/pull", {}, b"", NOW + 86400)
    with pytest.raises(ContractError) as err:
        verify_request(secret, headers, "GET", "/api/pull", {}, b"", NOW)
    assert err.value.code == ErrorCode.CLOCK_SKEW
    assert "ahead" in err.value.message and "clock" in err.value.message


def test_an_unsigned_request_is_unauthenticated():
    with pytest.raises(ContractError) as err:
        verify_request(new_secret(), {HEADER_TIME: "x", HEADER_SIGNATURE: ""}, "GET", "/api/pull", {}, b"", NOW)
    assert err.value.code == ErrorCode.UNAUTHENTICATED
