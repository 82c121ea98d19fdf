"""Fuzzing the enrollment code parser: a person pastes anything; the answer is a clear refusal."""

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.enrollment import PREFIX, decode_code
from shared.errors import ContractError, ErrorCode
from tests.fuzz.strategies import fuzz_text, json_value, with_line_end

CASES = 2000


def _code(data) -> str:
    raw = json.dumps(data).encode("utf-8", "surrogatepass")
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


codes = st.one_of(
    fuzz_text,
    fuzz_text.map(lambda s: PREFIX + s),
    st.builds(lambda url, token: _code({"url": url, "token": token}),
              st.one_of(fuzz_text, fuzz_text.map(lambda s: "http://" + s), st.sampled_from(["http://[::1", "https://[x]"])),
              st.one_of(fuzz_text, st.just("t" * 43))),
    json_value.map(_code),
    # Nested as deep as the code's length allows (a code is at most 2,048 characters).
    st.sampled_from([("[", 1001), ("[", 1200), ("[", 1500), ("[", 100), ('{"a":', 300)]).map(
        lambda d: PREFIX + base64.urlsafe_b64encode((d[0] * d[1]).encode()).rstrip(b"=").decode()),
    with_line_end([_code({"url": "https://cloud.example", "token": "t" * 43})]),
)


def test_any_pasted_enrollment_code_is_parsed_or_refused_as_enrollment_invalid():
    count = deep = 0

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(code=codes)
    def run(code):
        nonlocal count, deep
        count += 1
        deep += _nested_past_json_limit(code)
        try:
            parsed = decode_code(code)
        except ContractError as err:
            assert err.code == ErrorCode.ENROLLMENT_INVALID
        else:
            assert parsed.url.startswith(("http://", "https://")) and parsed.token

    run()
    assert count >= CASES
    assert deep >= 3, deep  # each code nested past what json's parser recurses into was tried


def _nested_past_json_limit(code: str) -> bool:
    body = code[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        return False
    return raw.startswith(b"[" * 1001)
