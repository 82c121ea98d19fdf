"""The one-time enrollment code: BSE1. + base64url JSON of the cloud URL and the token."""

import base64
import json

import pytest

from shared.enrollment import PREFIX, decode_code, encode_code
from shared.errors import ContractError, ErrorCode

TOKEN = "tok_" + "A" * 40


def test_a_code_round_trips_url_and_token():
    code = encode_code("https://cloud.example/", TOKEN)
    assert code.startswith("BSE1.") and "=" not in code
    decoded = decode_code(code)
    assert decoded.url == "https://cloud.example" and decoded.token == TOKEN


def test_surrounding_whitespace_from_copy_paste_is_ignored():
    assert decode_code("  " + encode_code("http://127.0.0.1:7071", TOKEN) + "\n").token == TOKEN


@pytest.mark.parametrize("code", [
    "BSE2.abc",
    "BSE1.!!!not-base64!!!",
    PREFIX + base64.urlsafe_b64encode(b"[1,2]").decode(),
    PREFIX + base64.urlsafe_b64encode(json.dumps({"url": "ftp://x", "token": TOKEN}).encode()).decode(),
    PREFIX + base64.urlsafe_b64encode(json.dumps({"url": "https://x", "token": "short"}).encode()).decode(),
    # urlsplit raises ValueError on a broken IPv6 host; it once escaped the parser.
    PREFIX + base64.urlsafe_b64encode(json.dumps({"url": "http://[::1", "token": TOKEN}).encode()).decode(),
    PREFIX + "A" * 5000,
    # Deeply nested JSON that still fits the length limit: it once escaped as a RecursionError.
    PREFIX + base64.urlsafe_b64encode(b"[" * 1500).rstrip(b"=").decode(),
    PREFIX + base64.urlsafe_b64encode(b'{"url":' * 200).rstrip(b"=").decode(),
])
def test_a_damaged_or_foreign_code_is_refused_as_mistyped_asking_to_type_it_again(code):
    with pytest.raises(ContractError) as err:
        decode_code(code)
    assert err.value.code == ErrorCode.ENROLLMENT_INVALID
    assert "looks mistyped" in err.value.message and "type it again" in err.value.message
    assert "new code" not in err.value.message  # head office's code is fine; the typing is not


def test_every_single_mistyped_character_is_caught_or_changes_nothing():
    # One character typed wrong anywhere: refused as mistyped before any cloud is asked, or decoded to
    # the very same URL and token (a typo in the name of the check field only makes it an old-style code).
    code = encode_code("https://cloud.example", TOKEN)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    caught = 0
    for at in range(len(PREFIX), len(code)):
        for typed in (alphabet[(alphabet.index(code[at]) + 1) % 64], alphabet[(alphabet.index(code[at]) + 29) % 64]):
            typo = code[:at] + typed + code[at + 1:]
            try:
                assert decode_code(typo) == decode_code(code)
            except ContractError as err:
                assert "looks mistyped" in err.message
                caught += 1
    assert caught > 0.9 * 2 * (len(code) - len(PREFIX))


def test_a_code_printed_before_the_check_existed_still_decodes():
    old = PREFIX + base64.urlsafe_b64encode(json.dumps({"url": "https://x", "token": TOKEN}).encode()).decode().rstrip("=")
    assert decode_code(old).token == TOKEN
