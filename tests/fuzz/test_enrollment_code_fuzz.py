"""Fuzzing the enrollment code parser: a person pastes anything; the answer is a clear refusal."""

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.enrollment import PREFIX, decode_code
from shared.errors import ContractError, ErrorCode
from tests.fuzz.strategies import fuzz_text, json_value

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
)


def test_any_pasted_enrollment_code_is_parsed_or_refused_as_enrollment_invalid():
    count = 0

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(code=codes)
    def run(code):
        nonlocal count
        count += 1
        try:
            parsed = decode_code(code)
        except ContractError as err:
            assert err.code == ErrorCode.ENROLLMENT_INVALID
        else:
            assert parsed.url.startswith(("http://", "https://")) and parsed.token

    run()
    assert count >= CASES
