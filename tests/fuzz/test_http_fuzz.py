"""Fuzzing every HTTP function: whatever a request holds, the answer is below 500 and says why.

The routes are read off the FunctionApp, so a route added to function_app.py is fuzzed
too (with the generic strategy of its method) and one whose method has none fails here.
Each case calls the real handler with an azure.functions.HttpRequest against a real
TableStore on Azurite. Authentic admin keys and validly signed branch requests are
generated alongside forged ones, so cases get past authentication into the handlers.
"""

import json
import os
from urllib.parse import quote

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from branchsync_cloud.http import MAX_BODY_BYTES
from shared import limits
from shared.encoding import encode_batch
from shared.models import BRANCH_RE, ErrorBody
from tests.builders import make_batch
from tests.fuzz.conftest import app_functions
from tests.fuzz.strategies import (
    any_body,
    auth_headers,
    auth_plans,
    fuzz_text,
    has_line_end,
    is_deep,
    json_bytes,
    mutated,
    query_params,
    with_line_end,
)

CASES = 1000
# `make test` runs half of a GET or DELETE route's 1,000, which still finds the faults that were
# put back by hand to measure it (README, "Tests"); `make fuzz` (FUZZ_SCALE=1) runs all 1,000.
# POST routes keep their full count: at half, too few deeply nested bodies get past
# authentication on some of them (9 of the 10 required on push).
FUZZ_SCALE = float(os.environ.get("FUZZ_SCALE") or 0.5)
FUZZ = settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
ROUTES = sorted(app_functions()[0])
# Routes whose every case folds or writes a whole store (a rebuild, a lake write): fewer cases,
# each still through authentication, parameters and the handler's refusals; never scaled down,
# since half of 300 brings too few of each hostile class past authentication.
FEWER_CASES = {("POST", "manage/reports/rebuild"): 300, ("POST", "manage/lake/write"): 300}
_NOT_A_NAME = fuzz_text.filter(lambda s: not BRANCH_RE.fullmatch(s))
_ROUTE_TEXT = fuzz_text.filter(lambda s: s and "/" not in s)


def _product(sku: str) -> dict:
    return {"sku": sku, "name": "Product " + sku, "price": 4200, "barcode": "890123", "unit": "kg", "vat_rate": "5",
            "active": True}


def _bodies(world, route: str):
    """Route-specific bodies: the valid body mutated, besides anything at all."""
    if route == "enroll":
        token = st.one_of(st.just(world.pending_token), fuzz_text)
        valid = st.builds(lambda t: {"token": t}, token)
    elif route == "manage/branches":
        # Names that could be valid come from a small set, so accepted creates stay few.
        valid = st.builds(lambda n: {"name": n}, st.one_of(st.sampled_from(["fz-new-1", "fz-new-2", world.branch]),
                                                          with_line_end(["fz-new-3", world.branch]), _NOT_A_NAME))
    elif route == "manage/catalog":
        # Products and deleted SKUs: stored ones, one never imported, both empty, one SKU in both.
        sku = st.sampled_from([*world.skus, "NEW-1"])
        valid = st.builds(lambda skus, gone: {"products": [_product(s) for s in skus], **({"deleted": gone} if gone else {})},
                          st.lists(sku, max_size=3), st.lists(sku, max_size=3))
    elif route == "push":
        # The world's own queue messages (accepted), another branch's, and text that is no message.
        mine = encode_batch(make_batch(world.branch, [1]), world.secret)
        other = encode_batch(make_batch(world.victim, [1]), "v" * 43)
        message = st.one_of(st.just(mine), st.just(mine), st.just(other), fuzz_text)
        valid = st.builds(lambda m: {"messages": m}, st.lists(message, min_size=1, max_size=3))
        too_many = json.dumps({"messages": [mine] * (limits.PUSH_ROUTE_MAX_MESSAGES + 1)}).encode()
        return st.one_of(json_bytes(valid.flatmap(mutated)), json_bytes(valid), json_bytes(valid), any_body,
                         st.just(too_many), st.just(b" " * (limits.PUSH_ROUTE_MAX_BODY_BYTES + 1)))
    else:
        return st.one_of(st.just(b""), st.just(b""), any_body)
    too_many = json.dumps({"products": [_product(f"S-{i}") for i in range(limits.CATALOG_IMPORT_MAX + 1)]}).encode()
    return st.one_of(json_bytes(valid.flatmap(mutated)), json_bytes(valid), any_body, st.just(too_many),
                     st.just(b" " * (MAX_BODY_BYTES + 1)))


def _route_values(world, name: str):
    known = {"sku": world.skus, "id": world.letter_ids, "name": [world.victim, world.pending]}.get(name, [world.victim])
    return st.one_of(st.sampled_from(known), with_line_end(known), _ROUTE_TEXT)


def _route_params(world, route: str):
    names = [part[1:-1].split(":")[0].rstrip("?").lstrip("*") for part in route.split("/") if part.startswith("{")]
    return st.fixed_dictionaries({n: _route_values(world, n) for n in names})


# Generic strategies per method: (params, body) for a route of that method.
METHODS = {
    "GET": lambda world, route: (query_params(world), st.one_of(st.just(b""), st.just(b""), any_body)),
    "DELETE": lambda world, route: (query_params(world), st.one_of(st.just(b""), any_body)),
    "POST": lambda world, route: (query_params(world), _bodies(world, route)),
}


def requests(world, method: str, route: str):
    """func.HttpRequest cases for one route; every sub-strategy is built once, here."""
    params_strategy, body_strategy = METHODS[method](world, route)
    parts = st.tuples(_route_params(world, route), params_strategy, body_strategy, auth_plans(route.startswith("manage/")))
    names = [(p[1:-1].split(":")[0].rstrip("?").lstrip("*") if p.startswith("{") else None, p) for p in route.split("/")]

    def build(drawn) -> func.HttpRequest:
        route_params, params, body, plan = drawn
        path = "/api/" + "/".join(quote(route_params[n], safe="", errors="surrogatepass") if n else p for n, p in names)
        headers = auth_headers(world, plan, method, path, params, body)
        return func.HttpRequest(method, "http://127.0.0.1:7071" + path, headers=headers, params=params,
                                route_params=route_params, body=body)

    return parts.map(build)


def test_every_route_of_the_app_has_a_strategy():
    missing = [(method, route) for method, route in ROUTES if method not in METHODS]
    assert not missing, f"add a strategy for {missing} in tests/fuzz/test_http_fuzz.py"
    assert ("GET", "health") in ROUTES and ("POST", "manage/catalog") in ROUTES


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_no_generated_request_gets_a_500_and_a_refusal_is_a_json_error_that_stored_nothing(world, method, route):
    if method not in METHODS:
        pytest.fail(f"no strategy for {method} {route}")
    handler = app_functions()[0][(method, route)]
    statuses: dict[int, int] = {}
    hostile: dict[str, int] = {}  # cases of each hostile class that got past authentication

    count = FEWER_CASES.get((method, route), CASES if method == "POST" else max(1, round(CASES * FUZZ_SCALE)))

    @settings(FUZZ, max_examples=count)
    @given(req=requests(world, method, route))
    def run(req):
        resp = handler(req)
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        if resp.status_code not in (401, 403):
            for kind in _hostile_classes(req):
                hostile[kind] = hostile.get(kind, 0) + 1
        writes = world.store.take()
        assert resp.status_code < 500, resp.get_body()[:500]
        if resp.status_code >= 400:
            error = ErrorBody.model_validate_json(resp.get_body()).error
            assert "\n" not in error.message and len(error.message) < 8000, error.message[:300]
            # A create refused as a duplicate re-ensures the existing branch's state row (an
            # idempotent no-op), a replay guard must remember the nonce of an authentic
            # request whatever its outcome, and the audit records refused head-office
            # requests too; nothing else may be written for a refused request.
            stored = [(name, args) for name, args, _ in writes
                      if not (name == "init_ledger" and resp.status_code == 409) and "nonce" not in name
                      and name != "add_audit"]
            assert not stored, (resp.status_code, resp.get_body()[:300], stored)
        else:
            json.loads(resp.get_body())

    run()
    assert sum(statuses.values()) >= count, statuses
    # Deep enough: many cases got past authentication into the handler's own checks.
    assert sum(n for status, n in statuses.items() if status not in (401, 403)) > count // 4, statuses
    # ...among them, cases of each hostile class: a line end after a valid value, a time off
    # the calendar once in UTC, JSON nested too deep (every route takes a query and a body).
    assert all(hostile.get(kind, 0) >= 10 for kind in ("line end", "extreme time", "deep")), hostile


_CALENDAR_EDGES = ("0001-01-01T", "9999-12-31T")  # what extreme_time generates


def _hostile_classes(req: func.HttpRequest) -> set[str]:
    texts = [*req.route_params.values(), *req.params.values()]
    body = req.get_body()
    found = set()
    if any(has_line_end(t) for t in texts) or any(f"{end}\"".encode() in body for end in ("\\n", "\\r", "\\u0085", "\\u2028")):
        found.add("line end")
    if any(t[:11] in _CALENDAR_EDGES for t in texts) or any(e.encode() in body for e in _CALENDAR_EDGES):
        found.add("extreme time")
    if is_deep(body):
        found.add("deep")
    return found



# --- the cases that once answered 500, each through its real handler --------------------------


def _call(world, method: str, route: str, path: str, route_params=None, params=None, body=b""):
    handler = app_functions()[0][(method, route)]
    return handler(func.HttpRequest(method, "http://127.0.0.1:7071/api/" + path, params=params or {},
                                    route_params=route_params or {}, body=body,
                                    headers={"X-Branchsync-Admin-Key": world.admin_key}))


@pytest.mark.parametrize("end", ["\n", "\r\n", "\u2028"])
def test_a_branch_name_ending_in_a_line_break_is_a_400_and_never_echoed_raw(world, end):
    created = _call(world, "POST", "manage/branches", "manage/branches", body=json.dumps({"name": "fz-new" + end}).encode())
    rotated = _call(world, "POST", "manage/branches/{name}/rotate", "manage/branches/x/rotate",
                    route_params={"name": world.victim + end})
    exported = _call(world, "GET", "manage/sales", "manage/sales", params={"branch": world.victim + end})
    for resp in (created, rotated, exported):
        error = ErrorBody.model_validate_json(resp.get_body()).error
        assert resp.status_code == 400 and end not in error.message, (resp.status_code, error)
    assert not [w for w in world.store.take() if "nonce" not in w[0] and w[0] != "add_audit"]


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_report_since_off_the_calendar_in_utc_is_a_400(world, since):
    resp = _call(world, "GET", "manage/reports/price-differences", "manage/reports/price-differences", params={"since": since})
    assert resp.status_code == 400 and "since" in ErrorBody.model_validate_json(resp.get_body()).error.message


def test_a_dead_letter_nested_deeper_than_json_can_parse_is_shown_as_unreadable(world):
    for letter_id in world.letter_ids[3:5]:  # seeded: signed bodies nested 100,000 and 50,000 deep
        resp = _call(world, "GET", "manage/deadletters/{id}", "manage/deadletters/" + letter_id, route_params={"id": letter_id})
        assert resp.status_code == 200 and "body unreadable" in json.loads(resp.get_body())["summary"]
