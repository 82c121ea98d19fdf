import pytest

from shared.errors import ContractError, ErrorCode
from shared.signing import HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME, new_secret, sign_request, verify_request

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


@pytest.mark.parametrize("timestamp", ["²", "١٧٠٠٠٠٠٠٠٠", "9" * 5000, "-1", " 1"])
def test_a_time_header_that_is_not_plain_ascii_digits_is_unauthenticated_not_a_crash(timestamp):
    # "²" and Arabic-Indic digits pass str.isdigit(); int() refuses the first and 5,000 digits.
    secret = new_secret()
    headers = {**sign_request(secret, "b1", "GET", "/api/pull", {}, b"", NOW), HEADER_TIME: timestamp}
    with pytest.raises(ContractError) as err:
        verify_request(secret, headers, "GET", "/api/pull", {}, b"", NOW)
    assert err.value.code == ErrorCode.UNAUTHENTICATED


@pytest.mark.parametrize("header, value, code", [
    (HEADER_SIGNATURE, "é" * 64, ErrorCode.BAD_SIGNATURE), (HEADER_SIGNATURE, "0" * 129, ErrorCode.BAD_SIGNATURE),
    # A nonce that is not 16 to 64 hex digits was never made by branchsync: the request counts as unsigned.
    (HEADER_NONCE, "n" * 129, ErrorCode.UNAUTHENTICATED), (HEADER_NONCE, "\ud800", ErrorCode.UNAUTHENTICATED)])
def test_a_malformed_or_oversized_signature_header_is_refused_not_a_crash(header, value, code):
    # A latin-1 signature header once reached hmac.compare_digest as str and raised TypeError.
    secret = new_secret()
    headers = {**sign_request(secret, "b1", "GET", "/api/pull", {}, b"", NOW), header: value}
    with pytest.raises(ContractError) as err:
        verify_request(secret, headers, "GET", "/api/pull", {}, b"", NOW)
    assert err.value.code == code


def test_a_query_holding_a_lone_surrogate_is_a_bad_signature_not_a_crash():
    secret = new_secret()
    headers = sign_request(secret, "b1", "GET", "/api/pull", {}, b"", NOW)
    with pytest.raises(ContractError) as err:
        verify_request(secret, headers, "GET", "/api/pull", {"cursor": "\ud800"}, b"", NOW)
    assert err.value.code == ErrorCode.BAD_SIGNATURE
