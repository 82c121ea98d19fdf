"""Hypothesis strategies for hostile input: text, JSON mutations, signed and unsigned requests.

Generated input leans towards what breaks parsers: control characters, lone surrogates,
digits that are not ASCII, numbers past every bound, invalid UTF-8, truncation, valid values
with a line break after them, times whose UTC offset carries them off the calendar, and
JSON nested far too deep. Valid
shapes are generated too and then mutated, so cases get past the first check.
"""

import json
import time
from datetime import datetime
from decimal import Decimal

from hypothesis import strategies as st

from shared import limits
from shared.encoding import Frame
from shared.money import line_total
from shared.signing import (
    HEADER_ADMIN_KEY,
    HEADER_BRANCH,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIME,
    mac,
    new_secret,
    sign_request,
)

SPECIAL = [
    "", " ", "\x00", "\n", "\r\n", "\t", "\x7f", "\x85", "\ud800", "\udfff", "\ud83d", "\u202e", "\ufeff", "\uffff",
    "²", "١٢٣", "０", "-1", "-0", "+5", "1e400", "1.5", "NaN", "Infinity", "9" * 5000, "9" * 20, "%00", "%ED%A0%80",
    "../", "/", "\\", "'", '"', "{}", "[]", "null", "A" * 300, "a" * 41, "é", "চাল", "0" * 30 + "1",
]

# Three classes of input that once got past the checks and raised (500, or a queue retry):
# a valid value with a line break after it (`re.match` with "$" accepts a final "\n"), a
# time whose UTC offset carries it off the calendar (OverflowError), and JSON nested deep
# enough to exhaust a recursive parser (RecursionError).
LINE_ENDS = ["\n", "\r\n", "\r", "\x85", "\u2028", "\n\n"]
EXTREME_TIMES = [
    "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59.999999-00:01", "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00.000001+00:01", "9999-12-31T12:00:00-12:00", "0001-01-01",
]
DEEP_OPENERS = ["[", '{"a":', '{"sales":[']


def with_line_end(values):
    """Values that would be valid, followed by a line break."""
    return st.tuples(st.sampled_from(list(values)), st.sampled_from(LINE_ENDS)).map("".join)


extreme_time = st.one_of(
    st.sampled_from(EXTREME_TIMES),
    st.builds(lambda when, minutes: when.isoformat() + f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}",
              st.sampled_from([datetime(1, 1, 1), datetime(1, 1, 1, 23, 59), datetime(9999, 12, 31), datetime(9999, 12, 31, 23, 59, 59)]),
              st.integers(-1439, 1439)),
)


@st.composite
def deep_json(draw) -> bytes:
    """JSON nested far deeper than any message (from just past 100 levels to 100,000)."""
    opener = draw(st.sampled_from(DEEP_OPENERS))
    depth = draw(st.sampled_from([101, 1000, 5000, 100_000]))
    closer = {"[": "]", '{"a":': "}", '{"sales":[': "]}"}[opener]
    return (opener * depth + "0" + closer * depth).encode()


def is_deep(body: bytes) -> bool:
    return any(body.startswith(o.encode() * 50) for o in DEEP_OPENERS)


def has_line_end(value: str) -> bool:
    return any(value.endswith(end) and value[: -len(end)].strip() for end in LINE_ENDS)


fuzz_text = st.one_of(
    st.text(max_size=24),
    st.sampled_from(SPECIAL),
    st.lists(st.one_of(st.characters(), st.sampled_from(SPECIAL)), max_size=6).map("".join),
    with_line_end(["dhaka-1", "RICE-5KG", "2026-11-28", "20261128-000000000000-00000000"]),
    extreme_time,
)
fuzz_number_text = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.integers(0, 2000).map(str),
    fuzz_text,
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.integers(-5, 5000),
    st.floats(), fuzz_text, extreme_time, st.sampled_from([2**53, 2**53 + 1, 2**63, -(2**63) - 1, 10**400, limits.PAISA_MAX + 1]),
)
json_value = st.recursive(
    json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(fuzz_text, inner, max_size=3)),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


def _mutate_at(value, path, action, new):
    if not path:
        return new if action == "replace" else value
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if not rest and action == "delete":
        del copy[head]
        return copy
    if not rest and action == "extra" and isinstance(copy, dict):
        copy[head] = value[head]
        copy[new[0]] = new[1]
        return copy
    if not rest and action == "extra":
        copy.append(new[1])
        return copy
    copy[head] = _mutate_at(value[head], rest, action, new)
    return copy


@st.composite
def mutated(draw, base):
    """`base` (a JSON-ready value) with a few fields replaced, deleted or added."""
    value = base
    for _ in range(draw(st.integers(0, 3))):
        paths = list(_paths(value))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "extra"]))
        if not path:
            action = "replace"
        new = (draw(fuzz_text), draw(json_value)) if action == "extra" else draw(json_value)
        value = _mutate_at(value, path, action, new)
    return value


@st.composite
def json_bytes(draw, value_strategy):
    """A value serialised as a client might, or might not: lone surrogates, truncation, stray bytes."""
    value = draw(value_strategy)
    try:
        text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    except ValueError:  # circular or otherwise unserialisable: send its repr instead
        text = repr(value)
    raw = text.encode("utf-8", "surrogatepass")
    how = draw(st.sampled_from(["as is", "as is", "as is", "truncated", "stray byte", "bom"]))
    if how == "truncated" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif how == "stray byte":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x00"])) + raw[at:]
    elif how == "bom":
        raw = b"\xef\xbb\xbf" + raw
    return raw


any_body = st.one_of(st.binary(max_size=200), json_bytes(json_value), deep_json())


# --- sales -------------------------------------------------------------------------------------


@st.composite
def sale_dict(draw, seq):
    lines = []
    for i in range(draw(st.integers(1, 3))):
        qty = draw(st.sampled_from(["1", "2", "0.5", "1.125", "12"]))
        price = draw(st.integers(0, 500_000))
        lines.append({"sku": draw(st.sampled_from(["RICE-5KG", "DAL-1KG", "চা-পাতা"])), "name": f"item {i}",
                      "qty": qty, "unit_price": price, "list_price": price, "line_total": line_total(Decimal(qty), price)})
    total = sum(line["line_total"] for line in lines)
    return {"seq": seq, "sale_id": draw(st.sampled_from(["0" * 32, "f" * 32])) if draw(st.booleans()) else f"{seq:032x}",
            "kind": "sale", "voids": None, "recorded_at": "2026-11-28T06:00:00Z", "lines": lines,
            "payment": {"method": draw(st.sampled_from(["cash", "card", "mobile"])), "amount": total}, "total": total}


@st.composite
def batch_dict(draw, branch):
    first = draw(st.integers(1, 400))
    sales = [draw(sale_dict(first + i)) for i in range(draw(st.integers(1, 3)))]
    return {"v": 1, "branch": branch, "sent_at": "2026-11-28T07:00:00Z", "sales": sales}


def frame(branch: str, secret: str, compressed: bytes) -> bytes:
    """A queue message body (after base64) around already-compressed JSON, signed with `secret`."""
    head = Frame(branch, b"", compressed).signed_part()
    return head + mac(secret, head + compressed) + compressed


# --- HTTP --------------------------------------------------------------------------------------

_JUNK_HEADERS = st.lists(st.tuples(st.sampled_from([HEADER_ADMIN_KEY, HEADER_BRANCH, HEADER_TIME, HEADER_NONCE,
                                                    HEADER_SIGNATURE, "Content-Type", "X-" + "a" * 40]), fuzz_text),
                         max_size=5)
_EXTRA_HEADER = st.one_of(st.none(), st.none(), st.none(), st.tuples(st.text("abcdefgh-XYZ", min_size=1, max_size=12), fuzz_text))
_TAMPER = st.tuples(st.sampled_from([HEADER_BRANCH, HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE]),
                    st.one_of(fuzz_text, fuzz_number_text))
_SKEW = st.tuples(st.sampled_from([-1, 1]), st.integers(301, 10**9)).map(lambda t: t[0] * t[1])
# Each mode draws only what it uses: (mode, detail).
_MODES = {
    "none": st.none(), "junk": _JUNK_HEADERS, "admin": st.none(), "wrong admin": fuzz_text, "signed": st.none(),
    "tampered": _TAMPER, "skewed": _SKEW, "other branch": st.none(), "forged": st.tuples(fuzz_text, fuzz_text),
}


def auth_plans(admin: bool):
    """What a case does about authentication; admin routes mostly carry the real admin key,
    branch routes mostly a valid signature, so most cases reach the handler's own checks."""
    authentic = "admin" if admin else "signed"
    modes = [authentic] * 5 + [m for m in _MODES if m not in ("admin", "signed")]
    return st.tuples(st.one_of([st.tuples(st.just(m), _MODES[m]) for m in modes]), _EXTRA_HEADER)


def auth_headers(world, plan, method, path, params, body) -> dict[str, str]:
    """Headers for a drawn plan; signed ones cover the exact method, path, query and body."""
    (mode, detail), extra = plan
    headers: dict[str, str] = {}
    if mode == "junk":
        headers.update(detail)
    elif mode in ("admin", "wrong admin"):
        headers[HEADER_ADMIN_KEY] = world.admin_key if mode == "admin" else detail
    elif mode == "forged":
        headers.update({HEADER_BRANCH: world.branch, HEADER_TIME: str(int(time.time())), HEADER_NONCE: detail[0],
                        HEADER_SIGNATURE: detail[1]})
    elif mode in ("signed", "tampered", "skewed", "other branch"):
        now = time.time() + (detail if mode == "skewed" else 0)
        secret = new_secret() if mode == "other branch" else world.secret
        try:
            headers.update(sign_request(secret, world.branch, method, path, params, body, now))
        except UnicodeEncodeError:  # a lone surrogate in the query: no branch could sign it; send it unsigned
            pass
        if mode == "tampered":
            headers[detail[0]] = detail[1]
    if extra is not None:
        headers[extra[0]] = extra[1]
    return headers


KNOWN_PARAMS = ["cursor", "limit", "pending", "version", "branch", "after", "since", "push"]


def query_params(world):
    known = [world.branch, "MDAw", "eyJiIjoieCIsImMiOjAsInMiOjB9", "queue,route", "route"]
    value = st.one_of(fuzz_number_text, st.sampled_from(known), with_line_end(known + ["12", "2026-11-28"]), extreme_time)
    return st.dictionaries(st.one_of(st.sampled_from(KNOWN_PARAMS), fuzz_text), value, max_size=4)
