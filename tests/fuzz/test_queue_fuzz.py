"""Fuzzing the queue function: whatever a message holds, it is applied or dead-lettered, never raised.

The real `apply_sales` of the FunctionApp runs each generated message against a real
TableStore on Azurite. "Nothing else is stored" is checked with the RecordingStore at the
Store seam (conftest.py): a rejected message may write its dead letter and the branch's
last_error (and last_refusal), and nothing more (no sales chunk, no watermark).
"""

import json
import zlib
from datetime import datetime, timezone

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import limits
from shared.encoding import MAGIC
from shared.errors import ErrorCode
from shared.models import SalesBatch
from shared.signing import new_secret
from tests.fuzz.conftest import app_functions
from tests.fuzz.strategies import LINE_ENDS, batch_dict, deep_json, extreme_time, frame, json_bytes, mutated, sale_dict

CASES = 2000
# What a refusal may write on the branch row: its last error, and its refusal for the till to hear of.
REFUSAL_FIELDS = {"last_error", "last_error_at", "last_refusal", "last_refusal_letter"}
FUZZ = settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# Cases that must be refused, with the code they must be refused with (None: any code).
MUST_REJECT = {
    "junk": None, "magic junk": None, "truncated": ErrorCode.MALFORMED_MESSAGE, "bad signature": ErrorCode.BAD_SIGNATURE,
    "unknown branch": ErrorCode.UNKNOWN_BRANCH, "oversized": ErrorCode.OVERSIZED_MESSAGE,
    "bomb": ErrorCode.OVERSIZED_MESSAGE, "not zlib": ErrorCode.MALFORMED_MESSAGE, "other branch inside": ErrorCode.FORBIDDEN,
    "too many lines": ErrorCode.MALFORMED_MESSAGE, "too many sales": ErrorCode.MALFORMED_MESSAGE,
    "deep nesting": ErrorCode.MALFORMED_MESSAGE, "extreme offset": ErrorCode.MALFORMED_MESSAGE,
    "line end in branch": ErrorCode.MALFORMED_MESSAGE,
}


def _big_batch(branch: str, sales: int, lines: int) -> bytes:
    line = {"sku": "RICE-5KG", "name": "x", "qty": "1", "unit_price": 1, "list_price": 1, "line_total": 1}
    sale = {"sale_id": "0" * 32, "kind": "sale", "recorded_at": "2026-11-28T06:00:00Z", "lines": [line] * lines,
            "payment": {"method": "cash", "amount": lines}, "total": lines}
    body = {"v": 1, "branch": branch, "sent_at": "2026-11-28T07:00:00Z",
            "sales": [{**sale, "seq": 1000 + i} for i in range(sales)]}
    return json.dumps(body).encode()


def queue_cases(world):
    b, secret = world.branch, world.secret
    signed = lambda raw: frame(b, secret, zlib.compress(raw))  # noqa: E731
    mutated_json = json_bytes(st.one_of(batch_dict(b).flatmap(mutated), batch_dict(b),
                                        st.builds(lambda s: {"v": 1, "branch": b, "sent_at": "2026-11-28T07:00:00Z",
                                                             "sales": [s]}, sale_dict(5).flatmap(mutated))))
    valid_frame = batch_dict(b).map(lambda d: signed(json.dumps(d).encode()))
    return st.one_of(
        st.tuples(st.just("junk"), st.binary(max_size=300).filter(lambda r: not r.startswith(MAGIC))),
        st.tuples(st.just("magic junk"), st.binary(max_size=120).map(lambda r: MAGIC + r)),
        st.tuples(st.just("mutated"), mutated_json.map(signed)),
        st.tuples(st.just("mutated"), mutated_json.map(signed)),
        st.tuples(st.just("mutated"), mutated_json.map(signed)),
        st.tuples(st.just("truncated"), st.tuples(valid_frame, st.integers(0, 5 + len(b) + 31)).map(lambda t: t[0][: t[1]])),
        st.tuples(st.just("bad signature"), st.tuples(valid_frame, st.integers(5 + len(b), 5 + len(b) + 31)).map(
            lambda t: t[0][: t[1]] + bytes([t[0][t[1]] ^ 1]) + t[0][t[1] + 1:])),
        st.tuples(st.just("bad signature"), batch_dict(b).map(lambda d: frame(b, new_secret(), zlib.compress(json.dumps(d).encode())))),
        st.tuples(st.just("unknown branch"), batch_dict("nobody-here").map(
            lambda d: frame("nobody-here", secret, zlib.compress(json.dumps(d).encode())))),
        st.tuples(st.just("other branch inside"), batch_dict(world.victim).map(lambda d: signed(json.dumps(d).encode()))),
        st.tuples(st.just("not zlib"), st.binary(min_size=1, max_size=100).filter(lambda r: r[:1] != b"\x78").map(
            lambda r: frame(b, secret, r))),
        st.tuples(st.just("oversized"), st.integers(limits.QUEUE_MESSAGE_MAX_CHARS + 1, 70_000).map(lambda n: MAGIC + bytes(n))),
        st.tuples(st.just("bomb"), st.just(frame(b, secret, zlib.compress(b" " * (limits.BATCH_MAX_JSON_BYTES + 10), 9)))),
        st.tuples(st.just("too many lines"), st.just(signed(_big_batch(b, 1, limits.SALE_MAX_LINES + 1)))),
        st.tuples(st.just("too many sales"), st.just(signed(_big_batch(b, limits.BATCH_MAX_SALES + 1, 1)))),
        # Signed with the branch's own secret, so they reach the batch's validation.
        st.tuples(st.just("deep nesting"), deep_json().map(signed)),
        st.tuples(st.just("extreme offset"), st.tuples(batch_dict(b), st.sampled_from(["sent_at", "recorded_at"]),
                                                       extreme_time.filter(_off_the_calendar)).map(
            lambda t: signed(json.dumps(_with_time(*t)).encode()))),
        st.tuples(st.just("line end in branch"), st.tuples(batch_dict(b), st.sampled_from(LINE_ENDS)).map(
            lambda t: signed(json.dumps({**t[0], "branch": b + t[1]}).encode()))),
        st.tuples(st.just("line end in branch"), st.tuples(batch_dict(b), st.sampled_from(LINE_ENDS)).map(
            lambda t: frame(b + t[1], secret, zlib.compress(json.dumps(t[0]).encode())))),
    )


def _off_the_calendar(moment: str) -> bool:
    try:
        datetime.fromisoformat(moment).astimezone(timezone.utc)
    except (OverflowError, ValueError):  # ValueError: "year 0 is out of range"
        return True
    return False


def _with_time(batch: dict, field: str, moment: str) -> dict:
    if field == "sent_at":
        return {**batch, "sent_at": moment}
    return {**batch, "sales": [{**batch["sales"][0], "recorded_at": moment}, *batch["sales"][1:]]}


def test_no_generated_queue_message_escapes_as_an_exception_and_every_refusal_is_a_dead_letter_alone(world):
    _, apply_sales = app_functions()
    codes = {str(c) for c in ErrorCode}
    seen: dict[str, int] = {}
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(case=queue_cases(world))
    def run(case):
        kind, body = case
        seen[kind] = seen.get(kind, 0) + 1
        apply_sales(func.QueueMessage(id="fuzz", body=body))  # must not raise
        writes = world.store.take()
        letters = [args[0] for name, args, _ in writes if name == "add_dead_letter"]
        outcome = letters[0].code if letters else "applied" if writes else "duplicate"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if kind in MUST_REJECT:
            assert letters, f"{kind} message was not dead-lettered"
            if MUST_REJECT[kind] is not None:
                assert letters[0].code == str(MUST_REJECT[kind]), letters[0]
        if letters:
            assert len(letters) == 1 and letters[0].code in codes and letters[0].reason
            others = [(name, kw) for name, args, kw in writes if name != "add_dead_letter"]
            # Only the branch's last error (and, for a message it signed, its refusal that the
            # next pull reports to the till) may change besides the dead letter: no chunk, no watermark.
            assert all(name == "merge_branch" and set(kw) <= REFUSAL_FIELDS for name, kw in others), others
        else:
            assert {name for name, _, _ in writes} <= {"commit_apply"}, writes
            batch = SalesBatch.model_validate_json(zlib.decompress(body[5 + len(world.branch) + 32:]))
            assert batch.branch == world.branch

    run()
    assert sum(seen.values()) >= CASES, seen
    assert set(seen) >= set(MUST_REJECT) | {"mutated"}, seen
    # Deep enough: generated batches were applied, found to be duplicates, or caught as clones.
    assert outcomes.get("applied", 0) > 20 and outcomes.get("malformed_message", 0) > 100, outcomes
    assert outcomes.get("applied", 0) + outcomes.get("duplicate", 0) + outcomes.get("cloned_till", 0) > 100, outcomes


@pytest.mark.parametrize("field", ["sent_at", "recorded_at"])
def test_an_authentic_message_with_an_extreme_utc_offset_is_dead_lettered_with_its_reason(world, field):
    _, apply_sales = app_functions()
    batch = {"v": 1, "branch": world.branch, "sent_at": "2026-11-28T07:00:00Z",
             "sales": [{**_sale(4), "recorded_at": "2026-11-28T06:00:00Z"}]}
    if field == "sent_at":
        batch["sent_at"] = "9999-12-31T23:59:59-23:59"
    else:
        batch["sales"][0]["recorded_at"] = "0001-01-01T00:00:00+23:59"
    apply_sales(func.QueueMessage(id="offset", body=frame(world.branch, world.secret, zlib.compress(json.dumps(batch).encode()))))
    [letter] = [args[0] for name, args, _ in world.store.take() if name == "add_dead_letter"]
    assert letter.code == str(ErrorCode.MALFORMED_MESSAGE) and field in letter.reason and "9999" in letter.reason


def test_a_defect_met_while_decoding_a_message_dead_letters_it_instead_of_retrying(world, monkeypatch):
    # Decoding is pure: whatever it raises is about this input. No real input is known to do
    # this any more (that is the point), so the decoder is replaced to stand for the next defect.
    import branchsync_cloud.ingest

    def broken(frame, secret):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(branchsync_cloud.ingest, "open_frame", broken)
    _, apply_sales = app_functions()
    body = frame(world.branch, world.secret, zlib.compress(json.dumps(
        {"v": 1, "branch": world.branch, "sent_at": "2026-11-28T07:00:00Z", "sales": [_sale(4)]}).encode()))
    apply_sales(func.QueueMessage(id="defect", body=body))  # must not raise
    [letter] = [args[0] for name, args, _ in world.store.take() if name == "add_dead_letter"]
    assert letter.code == str(ErrorCode.MALFORMED_MESSAGE) and "RecursionError" in letter.reason


def _sale(seq: int) -> dict:
    line = {"sku": "RICE-5KG", "name": "x", "qty": "1", "unit_price": 100, "list_price": 100, "line_total": 100}
    return {"seq": seq, "sale_id": f"{seq:032x}", "kind": "sale", "recorded_at": "2026-11-28T06:00:00Z",
            "lines": [line], "payment": {"method": "cash", "amount": 100}, "total": 100}
