"""The cloud's operations end to end against a real Azurite (each test has its own tables)."""

import base64
import dataclasses
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.queue import QueueClient
from pydantic import ValidationError

from branchsync_cloud.queue_access import SalesQueue
from branchsync_cloud.http import pull_answer, read_signed
from branchsync_cloud.request_auth import check_admin
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.store import Conflict, StoreUnavailable
from branchsync_cloud.table_store import TableStore
from headoffice.stand_ins import free_port
from shared import limits
from shared.encoding import encode_batch, from_queue_text
from shared.enrollment import decode_code
from shared.errors import ContractError, ErrorCode
from shared.models import CatalogImport, EnrollRequest, PullAnswer
from shared.signing import sign_request
from tests.builders import make_batch, make_product, make_sale
from tests.cloud.conftest import ADMIN_KEY

# --- helpers -------------------------------------------------------------------------------


def enroll(service, name="dhaka-1") -> str:
    created = service.create_branch(name, "https://cloud.example")
    return service.enroll(EnrollRequest(token=decode_code(created.enrollment_code).token)).secret


def push(service, batch, secret):
    """What the queue function does with one message pushed by the branch."""
    return service.apply_message(from_queue_text(encode_batch(batch, secret)))


def pull(service, name, secret, clock, **query):
    query = {k: str(v) for k, v in query.items()}
    headers = sign_request(secret, name, "GET", "/api/pull", query, b"", clock.now.timestamp())
    return signed_pull(service, headers, query)


def signed_pull(service, headers, query):
    """GET /api/pull as the HTTP handler answers it (these headers and query read by the adapter),
    read back as a till reads the answer's JSON."""
    return PullAnswer.model_validate_json(pull_answer(service, read_signed(headers, "GET", "/api/pull", query)))


def pull_all(service, name, secret, clock, cursor=0, limit=1000):
    """Pull pages until `more` is false; returns {sku: entry} as a branch would hold it, and the cursor."""
    held = {}
    while True:
        page = pull(service, name, secret, clock, cursor=cursor, limit=limit).catalog
        for e in page.entries:
            held[e.sku] = e
        cursor = page.next_cursor
        if not page.more:
            return held, cursor


def import_products(service, products):
    return service.import_catalog(CatalogImport(products=products))


def state(service, name):
    return service.store.get_ledger(name)


def letters(service, clock):
    return service.store.list_dead_letters(clock.now.date())


# --- enrollment ----------------------------------------------------------------------------


def test_a_created_branch_enrolls_with_its_code_and_gets_a_secret(service, clock):
    created = service.create_branch("dhaka-1", "https://cloud.example")
    code = decode_code(created.enrollment_code)
    assert code.url == "https://cloud.example"
    assert created.expires_at == clock.now + timedelta(hours=24)
    answer = service.enroll(EnrollRequest(token=code.token))
    assert answer.branch == "dhaka-1" and len(answer.secret) >= 43
    assert service.store.get_branch("dhaka-1").token_hash is None  # the token is gone with its use


def test_an_enrollment_code_works_only_once(service):
    token = decode_code(service.create_branch("dhaka-1", "https://x").enrollment_code).token
    service.enroll(EnrollRequest(token=token))
    with pytest.raises(ContractError) as err:
        service.enroll(EnrollRequest(token=token))
    assert err.value.code == ErrorCode.ENROLLMENT_INVALID and "already used" in err.value.message


def test_racing_enrollments_with_one_code_hand_out_exactly_one_secret(service):
    token = decode_code(service.create_branch("dhaka-1", "https://x").enrollment_code).token

    def attempt(_):
        try:
            return service.enroll(EnrollRequest(token=token)).secret
        except ContractError:
            return None

    with ThreadPoolExecutor(6) as pool:
        secrets_ = [s for s in pool.map(attempt, range(6)) if s]
    assert len(secrets_) == 1
    assert service.store.get_branch("dhaka-1").secret == secrets_[0]


def test_an_expired_enrollment_code_is_refused(service, clock):
    token = decode_code(service.create_branch("dhaka-1", "https://x").enrollment_code).token
    clock.now += timedelta(hours=24, seconds=1)
    with pytest.raises(ContractError) as err:
        service.enroll(EnrollRequest(token=token))
    assert err.value.code == ErrorCode.ENROLLMENT_INVALID and "expired" in err.value.message


def test_an_unknown_enrollment_token_is_refused(service):
    with pytest.raises(ContractError) as err:
        service.enroll(EnrollRequest(token="x" * 43))
    assert err.value.code == ErrorCode.ENROLLMENT_INVALID


def test_creating_an_existing_branch_is_a_conflict(service):
    service.create_branch("dhaka-1", "https://x")
    with pytest.raises(ContractError) as err:
        service.create_branch("dhaka-1", "https://x")
    assert err.value.code == ErrorCode.CONFLICT


# --- applying pushed sales -----------------------------------------------------------------


def test_a_batch_is_applied_exactly_once(service):
    secret = enroll(service)
    batch = make_batch("dhaka-1", range(1, 101))
    outcome = push(service, batch, secret)
    assert (outcome.status, outcome.new_sales, outcome.applied_through) == ("applied", 100, 100)
    s = state(service, "dhaka-1")
    assert s.sales_applied == 100 and s.total_paisa == sum(x.total for x in batch.sales)
    assert [x.seq for c in service.store.iter_chunks("dhaka-1") for x in c.sales] == list(range(1, 101))


def test_a_batch_delivered_twice_is_counted_once(service):
    secret = enroll(service)
    batch = make_batch("dhaka-1", range(1, 11))
    push(service, batch, secret)
    before = service.store.ops
    again = push(service, batch, secret)
    assert again.status == "duplicate" and again.duplicates == 10
    # Branch, watermark and the stored chunk (to check it is the same till's sale) are read; nothing is written.
    assert service.store.ops - before == 3
    s = state(service, "dhaka-1")
    assert s.sales_applied == 10 and s.total_paisa == sum(x.total for x in batch.sales)


def test_two_batches_out_of_order_end_with_correct_applied_through_and_totals(service):
    secret = enroll(service)
    first, second = make_batch("dhaka-1", range(1, 6)), make_batch("dhaka-1", range(6, 11))
    waiting = push(service, second, secret)
    assert waiting.status == "applied" and waiting.applied_through == 0
    assert state(service, "dhaka-1").apply.ranges == ((6, 10),)
    done = push(service, first, secret)
    assert done.applied_through == 10
    s = state(service, "dhaka-1")
    assert s.apply.ranges == () and s.sales_applied == 10
    assert s.total_paisa == sum(x.total for b in (first, second) for x in b.sales)


def test_concurrent_overlapping_deliveries_apply_each_sale_once(service):
    secret = enroll(service)
    sales = [make_sale(n) for n in range(1, 201)]
    # Overlapping windows, each delivered twice, all at once: ETag conflicts re-plan.
    batches = [make_batch("dhaka-1", sales[lo:lo + 30]) for lo in range(0, 200, 20)] * 2
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: push(service, b, secret), batches))
    s = state(service, "dhaka-1")
    assert s.apply.applied_through == 200 and s.sales_applied == 200
    assert s.total_paisa == sum(x.total for x in sales)
    assert [x.seq for c in service.store.iter_chunks("dhaka-1") for x in c.sales] == list(range(1, 201))


def test_one_branchs_messages_applied_at_once_by_one_process_take_turns_instead_of_racing(service):
    secret = enroll(service)
    sales = [make_sale(n) for n in range(1, 201)]
    lost = []
    commit = service.store.commit_apply

    def counting_commit(before, write):  # the real commit, its lost races counted
        try:
            return commit(before, write)
        except Conflict:
            lost.append(before)
            raise

    service.store.commit_apply = counting_commit
    batches = [make_batch("dhaka-1", sales[lo:lo + 20]) for lo in range(0, 200, 20)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda b: push(service, b, secret), batches))
    assert [o.status for o in outcomes] == ["applied"] * 10 and lost == []
    assert state(service, "dhaka-1").apply.applied_through == 200


def test_a_forged_message_is_dead_lettered_and_the_next_good_one_is_applied(service, clock):
    secret = enroll(service)
    forged = push(service, make_batch("dhaka-1", [1, 2]), "A" * 43)
    assert (forged.status, forged.code) == ("dead_lettered", "bad_signature")
    good = push(service, make_batch("dhaka-1", [1, 2]), secret)
    assert good.status == "applied" and good.applied_through == 2
    [letter] = letters(service, clock)
    assert letter.code == "bad_signature" and letter.branch == "dhaka-1" and letter.raw.startswith(b"BSQ1")
    assert "bad_signature" in service.store.get_branch("dhaka-1").last_error


def test_a_message_from_an_unknown_or_unenrolled_branch_is_dead_lettered(service, clock):
    service.create_branch("later-1", "https://x")  # created, never enrolled
    for name in ("ghost-1", "later-1"):
        outcome = push(service, make_batch(name, [1]), "A" * 43)
        assert (outcome.status, outcome.code) == ("dead_lettered", "unknown_branch")
    assert sorted(d.branch for d in letters(service, clock)) == ["ghost-1", "later-1"]


@pytest.mark.parametrize("body", [b"", b"hello", b"BSQ1\x05dhaka", b"BSQ1" + bytes([8]) + b"dhaka-1!" + b"x" * 40])
def test_a_malformed_message_is_dead_lettered(service, clock, body):
    enroll(service)
    outcome = service.apply_message(body)
    assert (outcome.status, outcome.code) == ("dead_lettered", "malformed_message")
    assert [d.raw for d in letters(service, clock)] == [body]


@pytest.mark.azurite
def test_a_storage_outage_raises_so_the_queue_retries_the_message(storage, clock):
    dead = re.sub(r"TableEndpoint=http://127.0.0.1:\d+", f"TableEndpoint=http://127.0.0.1:{free_port()}", storage)
    service = Service(TableStore(dead, "tdead", retry_total=0), Settings(storage=dead, admin_key="k"), clock)
    with pytest.raises(StoreUnavailable):
        push(service, make_batch("dhaka-1", [1]), "A" * 43)


def test_a_10000_sale_backlog_in_10_messages_costs_far_fewer_storage_ops_than_sales(service, capsys):
    secret = enroll(service)
    messages = [encode_batch(make_batch("dhaka-1", range(lo, lo + 1000)), secret) for lo in range(1, 10_001, 1000)]
    assert all(len(m) <= limits.QUEUE_MESSAGE_BUDGET_CHARS for m in messages)
    before = service.store.ops
    for text in messages:
        service.apply_message(from_queue_text(text))
    ops = service.store.ops - before
    assert state(service, "dhaka-1").apply.applied_through == 10_000
    with capsys.disabled():
        print(f"\n[storage ops] 10,000-sale backlog in {len(messages)} messages: {ops} ops, {ops / 10_000:.4f} per sale")
    assert ops <= 3 * len(messages)  # branch read + state read (with its day summaries) + one transaction per message
    assert ops / 10_000 < 0.01


# --- pull ----------------------------------------------------------------------------------


@pytest.mark.azurite
def test_pull_acknowledges_applied_sales_and_hands_out_an_add_only_sas(service, clock, storage):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", range(1, 8)), secret)
    answer = pull(service, "dhaka-1", secret, clock, cursor=0)
    assert answer.branch == "dhaka-1" and answer.applied_through == 7
    assert answer.server_time == clock.now
    assert answer.push.queue_url.endswith("/devstoreaccount1/sales")
    assert "sp=a&" in answer.push.sas_token + "&" and answer.push.expires_at == clock.now + timedelta(hours=1)
    QueueClient.from_connection_string(storage, "sales").create_queue() if not _queue_exists(storage) else None
    queue = QueueClient.from_queue_url(answer.push.queue_url, credential=answer.push.sas_token)
    queue.send_message(encode_batch(make_batch("dhaka-1", [8]), secret))  # add: allowed
    with pytest.raises(HttpResponseError):
        queue.peek_messages()  # read: refused


def _queue_exists(storage) -> bool:
    try:
        QueueClient.from_connection_string(storage, "sales").get_queue_properties()
        return True
    except HttpResponseError:
        return False


def test_pull_records_when_the_branch_last_pulled_and_what_is_pending(service, clock):
    secret = enroll(service)
    pull(service, "dhaka-1", secret, clock, cursor=0, pending=42)
    record = service.store.get_branch("dhaka-1")
    assert record.last_pull == clock.now and record.pending == 42


@pytest.mark.parametrize("tamper, code", [
    (lambda h: h.pop("X-Branchsync-Signature"), ErrorCode.UNAUTHENTICATED),
    (lambda h: h.update({"X-Branchsync-Signature": "0" * 64}), ErrorCode.BAD_SIGNATURE),
    (lambda h: h.update({"X-Branchsync-Branch": "ghost-1"}), ErrorCode.UNKNOWN_BRANCH),
    (lambda h: h.pop("X-Branchsync-Branch"), ErrorCode.UNAUTHENTICATED),
])
def test_a_pull_without_a_valid_signature_is_refused(service, clock, tamper, code):
    secret = enroll(service)
    headers = sign_request(secret, "dhaka-1", "GET", "/api/pull", {"cursor": "0"}, b"", clock.now.timestamp())
    tamper(headers)
    with pytest.raises(ContractError) as err:
        signed_pull(service, headers, {"cursor": "0"})
    assert err.value.code == code


def test_a_pull_from_a_branch_with_a_wrong_clock_says_to_fix_the_clock(service, clock):
    secret = enroll(service)
    headers = sign_request(secret, "dhaka-1", "GET", "/api/pull", {}, b"", clock.now.timestamp() - 900)
    with pytest.raises(ContractError) as err:
        signed_pull(service, headers, {})
    assert err.value.code == ErrorCode.CLOCK_SKEW and "clock" in err.value.message


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "1001"}, {"max_entries": "10001"}, {"max_entries": "0"},
                                   {"cursor": "-1"}, {"cursor": "abc"}, {"pending": "1.5"},
                                   {"cursor": "9" * 5000}, {"pending": "٣"}])
def test_a_pull_with_a_bad_parameter_is_a_bad_request_naming_it(service, clock, query):
    secret = enroll(service)
    with pytest.raises(ContractError) as err:
        pull(service, "dhaka-1", secret, clock, **query)
    assert err.value.code == ErrorCode.BAD_REQUEST and next(iter(query)) in err.value.message


@pytest.mark.parametrize("presented", ["\ud800", "k" * 10_000, "", None])
def test_an_admin_key_header_that_is_not_text_or_too_long_is_unauthenticated_not_a_crash(service, presented):
    # A lone surrogate once made the key comparison raise UnicodeEncodeError (a 500).
    with pytest.raises(ContractError) as err:
        check_admin(service.settings, presented)
    assert err.value.code == ErrorCode.UNAUTHENTICATED


# --- the push route --------------------------------------------------------------------------


def route_service(service, storage, mode="queue"):
    """The same cloud with its push mode set and the route's messages going to a queue of its own."""
    queue = "push" + uuid.uuid4().hex[:12]
    QueueClient.from_connection_string(storage, queue).create_queue()
    settings = dataclasses.replace(service.settings, push_mode_setting=mode)
    return Service(service.store, settings, service.clock, sales_queue=SalesQueue(storage, queue)), queue


def post_push(service, name, secret, clock, texts, body=None):
    body = body if body is not None else json.dumps({"messages": texts}).encode()
    headers = sign_request(secret, name, "POST", "/api/push", {}, body, clock.now.timestamp())
    return service.push(read_signed(headers, "POST", "/api/push", {}, body))


def queued(storage, queue) -> list[str]:
    return [m.content for m in QueueClient.from_connection_string(storage, queue).peek_messages(max_messages=32)]


def test_a_queue_mode_cloud_gives_an_older_branch_exactly_the_answer_it_knows(service, clock):
    secret = enroll(service)
    answer = pull(service, "dhaka-1", secret, clock, cursor=0)  # no `push` parameter: an older branchsync
    assert answer.push is not None and answer.push_route is None
    assert "push_route" not in json.loads(answer.model_dump_json())  # older branches refuse unknown fields


def test_a_branch_that_can_use_the_route_gets_it_as_the_fallback_beside_the_sas(service, clock):
    secret = enroll(service)
    answer = pull(service, "dhaka-1", secret, clock, cursor=0, push="queue,route")
    assert answer.push is not None
    assert (answer.push_route.path, answer.push_route.max_messages) == ("/api/push", limits.PUSH_ROUTE_MAX_MESSAGES)


@pytest.mark.azurite
def test_a_route_mode_cloud_hands_out_no_sas_and_tells_an_older_branch_to_upgrade(service, clock, storage):
    routed, _ = route_service(service, storage, "route")
    secret = enroll(routed)
    answer = pull(routed, "dhaka-1", secret, clock, cursor=0, push="queue,route")
    assert answer.push is None and answer.push_route.path == "/api/push"
    assert "push" not in json.loads(answer.model_dump_json())
    with pytest.raises(ContractError, match="install the current branchsync") as err:
        pull(routed, "dhaka-1", secret, clock, cursor=0)
    assert err.value.code == ErrorCode.BAD_REQUEST


@pytest.mark.azurite
def test_pushed_messages_are_queued_as_they_are_and_applied_exactly_once(service, clock, storage):
    routed, queue = route_service(service, storage, "route")
    secret = enroll(routed)
    texts = [encode_batch(make_batch("dhaka-1", [1, 2]), secret), encode_batch(make_batch("dhaka-1", [3]), secret)]
    assert post_push(routed, "dhaka-1", secret, clock, texts).accepted == 2
    assert post_push(routed, "dhaka-1", secret, clock, texts[:1]).accepted == 1  # a resent copy
    assert queued(storage, queue) == texts + texts[:1]
    outcomes = [routed.apply_message(from_queue_text(t)).status for t in queued(storage, queue)]
    assert outcomes == ["applied", "applied", "duplicate"]
    assert state(routed, "dhaka-1").apply.applied_through == 3


@pytest.mark.azurite
def test_a_push_of_another_branch_s_message_or_of_junk_is_refused_and_queues_nothing(service, clock, storage):
    routed, queue = route_service(service, storage)
    secret, other = enroll(routed), enroll(routed, "ctg-2")
    mine = encode_batch(make_batch("dhaka-1", [1]), secret)
    cases = {
        ErrorCode.FORBIDDEN: [mine, encode_batch(make_batch("ctg-2", [1]), other)],
        ErrorCode.MALFORMED_MESSAGE: [mine, "not base64!"],
    }
    for code, texts in cases.items():
        with pytest.raises(ContractError) as err:
            post_push(routed, "dhaka-1", secret, clock, texts)
        assert err.value.code == code and "message 2 of the push" in err.value.message
    with pytest.raises(ContractError) as err:
        post_push(routed, "dhaka-1", secret, clock, [], body=b"x" * (limits.PUSH_ROUTE_MAX_BODY_BYTES + 1))
    assert err.value.code == ErrorCode.OVERSIZED_MESSAGE
    with pytest.raises(ValidationError):
        post_push(routed, "dhaka-1", secret, clock, [mine] * (limits.PUSH_ROUTE_MAX_MESSAGES + 1))
    assert queued(storage, queue) == []


@pytest.mark.azurite
def test_a_push_sent_again_verbatim_is_refused_as_a_replay(service, clock, storage):
    routed, queue = route_service(service, storage)
    secret = enroll(routed)
    body = json.dumps({"messages": [encode_batch(make_batch("dhaka-1", [1]), secret)]}).encode()
    headers = sign_request(secret, "dhaka-1", "POST", "/api/push", {}, body, clock.now.timestamp())
    routed.push(read_signed(headers, "POST", "/api/push", {}, body))
    with pytest.raises(ContractError) as err:
        routed.push(read_signed(headers, "POST", "/api/push", {}, body))
    assert err.value.code == ErrorCode.REPLAYED and len(queued(storage, queue)) == 1


@pytest.mark.azurite
def test_a_push_signed_with_another_secret_is_refused(service, clock, storage):
    routed, queue = route_service(service, storage)
    enroll(routed)
    with pytest.raises(ContractError) as err:
        post_push(routed, "dhaka-1", "x" * 43, clock, [encode_batch(make_batch("dhaka-1", [1]), "x" * 43)])
    assert err.value.code == ErrorCode.BAD_SIGNATURE and queued(storage, queue) == []


# --- catalog -------------------------------------------------------------------------------


def test_catalog_pull_pages_through_versions_and_resumes_from_the_cursor(service, clock):
    secret = enroll(service)
    result = import_products(service, [make_product(f"P{i:03d}", 100 + i) for i in range(25)])
    assert (result.written, result.first_version, result.last_version) == (25, 1, 25)
    first = pull(service, "dhaka-1", secret, clock, cursor=0, limit=10).catalog
    assert [e.version for e in first.entries] == list(range(1, 11)) and first.more and first.next_cursor == 10
    # The branch was cut off here; it resumes from its stored cursor and misses nothing.
    held, cursor = pull_all(service, "dhaka-1", secret, clock, cursor=first.next_cursor, limit=10)
    assert sorted(held) == [f"P{i:03d}" for i in range(10, 25)] and cursor == 25


def test_a_changed_price_and_a_deleted_sku_reach_branches_as_new_versions(service, clock):
    secret = enroll(service)
    import_products(service, [make_product("RICE", 100), make_product("OIL", 200), make_product("SALT", 300)])
    _, cursor = pull_all(service, "dhaka-1", secret, clock)
    import_products(service, [make_product("RICE", 150)])
    deleted = service.delete_sku("OIL")
    assert (deleted.written, deleted.first_version) == (1, 5)
    page = pull(service, "dhaka-1", secret, clock, cursor=cursor).catalog
    assert [(e.version, e.sku, e.deleted) for e in page.entries] == [(4, "RICE", False), (5, "OIL", True)]
    assert page.entries[0].product.price == 150 and page.entries[1].product is None
    # A fresh branch sees one row per SKU: the latest version, tombstone included.
    held, _ = pull_all(service, "dhaka-1", secret, clock)
    assert {s: (e.version, e.deleted) for s, e in held.items()} == {"SALT": (3, False), "RICE": (4, False), "OIL": (5, True)}


def test_deleting_an_unknown_or_already_deleted_sku_is_not_found(service):
    import_products(service, [make_product("OIL")])
    service.delete_sku("OIL")
    for sku in ("OIL", "NEVER"):
        with pytest.raises(ContractError) as err:
            service.delete_sku(sku)
        assert err.value.code == ErrorCode.NOT_FOUND


def test_reimporting_unchanged_products_writes_nothing(service):
    products = [make_product(f"P{i}") for i in range(12)]
    import_products(service, products)
    again = import_products(service, products)
    assert (again.written, again.first_version, again.last_version) == (0, 12, 12)


def test_a_sku_twice_in_one_import_is_refused(service):
    with pytest.raises(ContractError) as err:
        import_products(service, [make_product("A"), make_product("A", 5)])
    assert err.value.code == ErrorCode.BAD_REQUEST


def transactions(service) -> list:
    """Spy on the store: every catalog transaction (CatalogTxn) the service hands it to commit."""
    seen = []
    commit = service.store.commit_catalog

    def spy(base, txn, buckets):
        seen.append(txn)
        return commit(base, txn, buckets)

    service.store.commit_catalog = spy
    return seen


def test_an_import_of_1000_products_uses_few_transactions_of_at_most_100_operations(service, clock):
    txns = transactions(service)
    before = service.store.ops
    result = import_products(service, [make_product(f"P{i:04d}") for i in range(1000)])
    assert result.written == 1000 and result.last_version == 1000
    # counter read + one index range query + one transaction (+ table creation): far fewer than products
    assert service.store.ops - before <= 3 + 1
    assert len(txns) == 1 and txns[0].ops <= 100
    before = service.store.ops
    rewritten = import_products(service, [make_product(f"P{i:04d}", 1) for i in range(1000)])
    assert (rewritten.first_version, rewritten.last_version) == (1001, 2000)
    assert service.store.ops - before == 3 and len(txns) == 2 and txns[1].ops <= 100
    # A fresh branch ends with each SKU at its latest version...
    secret = enroll(service)
    held, cursor = pull_all(service, "dhaka-1", secret, clock)
    assert len(held) == 1000 and min(e.version for e in held.values()) == 1001 and cursor == 2000
    # ...and once compacted, it is sent nothing else.
    assert service.purge_tombstones() == 0
    assert sorted(r.version for s in service.store.scan_catalog() for r in s.rows) == list(range(1001, 2001))
    page = pull(service, "dhaka-1", secret, clock, cursor=0).catalog
    assert len(page.entries) == 1000 and not page.more and page.next_cursor == 2000


def change(service, products=(), deleted=()):
    return service.import_catalog(CatalogImport(products=list(products), deleted=list(deleted)))


@pytest.fixture
def table_service(storage, table_prefix, clock) -> Service:
    """The service over TableStore on Azurite: the segments a write leaves are the real rows."""
    settings = Settings(storage=storage, admin_key=ADMIN_KEY, public_url="https://cloud.example", table_prefix=table_prefix)
    return Service(TableStore(storage, table_prefix), settings, clock)


@pytest.mark.azurite
def test_a_price_day_of_1000_reprices_and_100_deletes_leaves_a_handful_of_segments_not_101(table_service, clock):
    service = table_service
    products = [make_product(f"P{i:04d}", 100 + i) for i in range(2000)]
    for lo in range(0, 2000, 1000):
        import_products(service, products[lo:lo + 1000])
    secret = enroll(service)
    _, cursor = pull_all(service, "dhaka-1", secret, clock)
    segments = len(list(service.store.scan_catalog()))
    txns = transactions(service)
    repriced = [p.model_copy(update={"price": p.price + 1}) for p in products[:1000]]
    gone = [p.sku for p in products[1900:]]
    # One request carries CATALOG_IMPORT_MAX products and deletes together: it costs what an
    # import does (counter read, index query, one transaction); the last 100 prices follow.
    before = service.store.ops
    first = change(service, repriced[:900], gone)
    assert service.store.ops - before == 3 and len(txns) == 1
    assert (first.written, first.first_version, first.last_version) == (1000, 2001, 3000)
    second = change(service, repriced[900:])
    assert (second.written, second.first_version, second.last_version) == (100, 3001, 3100)
    # The catalog holds the segments the plans made: a handful, where a request per delete made 100 more.
    made = sum(len(t.created) for t in txns)
    assert len(list(service.store.scan_catalog())) == segments + made and made <= 3
    # A branch pulling from its earlier cursor gets all 1,100 changes.
    held, after = pull_all(service, "dhaka-1", secret, clock, cursor=cursor)
    assert after == 3100 and len(held) == 1100
    assert {s for s, e in held.items() if e.deleted} == set(gone)
    assert all(held[p.sku].product == p for p in repriced)


def test_a_change_that_deletes_a_sku_never_imported_changes_nothing_and_names_the_sku(service):
    import_products(service, [make_product("RICE", 100), make_product("OIL", 200)])
    with pytest.raises(ContractError) as err:
        change(service, [make_product("RICE", 150)], ["OIL", "NEVER-1"])
    assert err.value.code == ErrorCode.NOT_FOUND and "NEVER-1" in err.value.message and "OIL" not in err.value.message
    assert service.store.get_catalog_counter().counter.last_version == 2
    again = import_products(service, [make_product("RICE", 100), make_product("OIL", 200)])
    assert again.written == 0  # both still as they were


def test_a_change_skips_skus_already_deleted_so_sending_it_again_writes_nothing_new(service):
    import_products(service, [make_product(f"P{i}") for i in range(4)])
    service.delete_sku("P0")  # 5
    result = change(service, [make_product("P1", 1)], ["P0", "P2", "P3"])
    assert (result.written, result.first_version, result.last_version) == (3, 6, 8)
    again = change(service, [make_product("P1", 1)], ["P0", "P2", "P3"])
    assert (again.written, again.first_version, again.last_version) == (0, 8, 8)


@pytest.mark.parametrize("products, deleted, said", [(["A"], ["A"], "both written and deleted"),
                                                     ([], ["A", "A"], "deleted twice")])
def test_a_change_that_writes_and_deletes_a_sku_or_deletes_it_twice_is_a_bad_request(service, products, deleted, said):
    import_products(service, [make_product("A")])
    with pytest.raises(ContractError) as err:
        change(service, [make_product(s, 5) for s in products], deleted)
    assert err.value.code == ErrorCode.BAD_REQUEST and said in err.value.message and "sku A" in err.value.message


def test_an_initial_pull_of_5000_products_reads_far_fewer_storage_operations_than_products(service, clock, capsys):
    for lo in range(0, 5000, 1000):
        import_products(service, [make_product(f"P{i:05d}", 100 + i) for i in range(lo, lo + 1000)])
    secret = enroll(service)
    before = service.store.ops
    held, cursor = pull_all(service, "dhaka-1", secret, clock)
    ops = service.store.ops - before
    assert len(held) == 5000 and cursor == 5000 and held["P04321"].product.price == 4421
    with capsys.disabled():
        print(f"\n[storage ops] initial pull of 5,000 products: {ops} ops, {ops / 5000:.4f} per product")
    # 5 pages, each: branch read, nonce insert, state read, counter read, one segment query page,
    # the counter again; the branch's last pull merged once; and once an hour per instance: the
    # hour's nonce table created, old ones listed.
    assert ops <= 5 * 6 + 1 + 2
    assert ops / 5000 < 0.01


def test_a_pull_at_the_latest_version_reads_no_segments_and_still_sees_a_change_made_after_it(service, clock):
    import_products(service, [make_product(f"P{i:05d}", 100 + i) for i in range(50)])
    secret = enroll(service)
    _, cursor = pull_all(service, "dhaka-1", secret, clock)
    before = service.store.ops
    answer = pull(service, "dhaka-1", secret, clock, cursor=cursor)
    # Branch read, nonce insert, state read, counter read: no segment query, no second counter read.
    assert service.store.ops - before == 4
    assert answer.catalog.entries == [] and answer.catalog.next_cursor == cursor and not answer.catalog.more
    import_products(service, [make_product("P00007", 999)])
    news = pull(service, "dhaka-1", secret, clock, cursor=cursor).catalog
    assert [(e.sku, e.product.price) for e in news.entries] == [("P00007", 999)] and news.next_cursor == cursor + 1


def test_a_till_that_takes_wide_pages_gets_5000_products_in_one_pull_and_an_older_till_pages_of_1000(service, clock):
    for lo in range(0, 5000, 1000):
        import_products(service, [make_product(f"P{i:05d}", 100 + i) for i in range(lo, lo + 1000)])
    secret = enroll(service)
    before = service.store.ops
    wide = pull(service, "dhaka-1", secret, clock, cursor=0, limit=1000, max_entries=10_000).catalog
    ops = service.store.ops - before
    assert len(wide.entries) == 5000 and not wide.more and wide.next_cursor == 5000
    assert wide.entries[4321].product.price == 4421
    # Branch read, nonce insert, state read, counter, ONE query page of all five segments, the
    # counter again, branch merge; and once an hour: the hour's nonce table created, old ones listed.
    assert ops <= 7 + 2
    older = pull(service, "dhaka-1", secret, clock, cursor=0, limit=1000).catalog
    assert len(older.entries) == 1000 and older.more and older.next_cursor == 1000


def test_the_pages_of_one_pull_record_the_branch_s_last_pull_once(service, clock):
    for lo in range(0, 2500, 1000):
        import_products(service, [make_product(f"P{i:04d}") for i in range(lo, min(lo + 1000, 2500))])
    secret = enroll(service)
    writes = []
    merge = service.store.merge_branch
    service.store.merge_branch = lambda name, **fields: writes.append(fields) or merge(name, **fields)
    held, cursor = pull_all(service, "dhaka-1", secret, clock, limit=1000)
    assert len(held) == 2500 and len(writes) == 1
    # A minute on, or a different number pending, and the pull is recorded again.
    clock.now += timedelta(seconds=61)
    pull(service, "dhaka-1", secret, clock, cursor=cursor)
    pull(service, "dhaka-1", secret, clock, cursor=cursor, pending=3)
    pull(service, "dhaka-1", secret, clock, cursor=cursor, pending=3)
    record = service.store.get_branch("dhaka-1")
    assert len(writes) == 3 and record.last_pull == clock.now and record.pending == 3


def test_a_product_updated_after_a_pull_reaches_a_branch_on_an_old_cursor_at_its_latest_version(service, clock):
    secret = enroll(service)
    import_products(service, [make_product(f"P{i}", 100) for i in range(6)])  # versions 1-6, one segment
    first = pull(service, "dhaka-1", secret, clock, cursor=0, limit=2).catalog  # cut off after P0, P1
    held = {e.sku: e for e in first.entries}
    _, current = pull_all(service, "dhaka-1", secret, clock)  # another branch is up to date: cursor 6
    import_products(service, [make_product("P3", 200)])  # 7
    import_products(service, [make_product("P3", 300)])  # 8
    import_products(service, [make_product("P0", 150)])  # 9
    # The old cursor's pages still carry P3's superseded version 4 from the first segment;
    # the branch applies entries in version order, so the latest one wins.
    seen, cursor = [], first.next_cursor
    while True:
        page = pull(service, "dhaka-1", secret, clock, cursor=cursor, limit=2).catalog
        seen += [(e.version, e.sku) for e in page.entries]
        for e in page.entries:
            held[e.sku] = e
        cursor = page.next_cursor
        if not page.more:
            break
    assert (4, "P3") in seen and (8, "P3") in seen and cursor == 9
    assert {s: (e.version, e.product.price) for s, e in held.items()} == {
        "P0": (9, 150), "P1": (2, 100), "P2": (3, 100), "P3": (8, 300), "P4": (5, 100), "P5": (6, 100)}
    # The up-to-date branch gets P3 once, at version 8, and P0.
    page = pull(service, "dhaka-1", secret, clock, cursor=current).catalog
    assert [(e.version, e.sku, e.product.price) for e in page.entries] == [(8, "P3", 300), (9, "P0", 150)]


def test_compaction_keeps_every_branch_correct_and_sends_a_fresh_branch_each_sku_once(service, clock):
    secret = enroll(service)
    for lo in range(0, 300, 30):  # ten small segments
        import_products(service, [make_product(f"P{i:03d}", 100) for i in range(lo, lo + 30)])
    early, early_cursor = pull_all(service, "dhaka-1", secret, clock, limit=1000)
    mid = pull(service, "dhaka-1", secret, clock, cursor=0, limit=120).catalog  # a branch cut off at 120
    import_products(service, [make_product(f"P{i:03d}", 200) for i in range(0, 300, 2)])  # 301-450
    for i in range(10):
        service.delete_sku(f"P{i:03d}")  # 451-460
    final = {**early}
    final.update(pull_all(service, "dhaka-1", secret, clock, cursor=early_cursor)[0])
    assert service.purge_tombstones() == 0  # the tombstones are newer than live products: they stay
    stored = [r for s in service.store.scan_catalog() for r in s.rows]
    assert len(stored) == 300 and len(list(service.store.scan_catalog())) < 10
    # A fresh branch gets exactly one entry per SKU; the cut-off one ends in the same state.
    fresh, cursor = pull_all(service, "dhaka-1", secret, clock, limit=100)
    assert fresh == final and cursor == 460
    resumed = {e.sku: e for e in mid.entries}
    resumed.update(pull_all(service, "dhaka-1", secret, clock, cursor=mid.next_cursor, limit=100)[0])
    assert resumed == final
    assert {s: (e.deleted, e.product and e.product.price) for s, e in final.items()} == {
        f"P{i:03d}": (True, None) if i < 10 else (False, 200 if i % 2 == 0 else 100) for i in range(300)}


def test_a_reader_never_sees_a_version_before_its_predecessor(service, clock):
    secret = enroll(service)
    stop = threading.Event()
    seen_gaps = []

    def read_continuously():
        while not stop.is_set():
            held, _ = pull_all(service, "dhaka-1", secret, clock, limit=37)
            versions = sorted(e.version for e in held.values())
            if versions != list(range(1, len(versions) + 1)):
                seen_gaps.append(versions)

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        with ThreadPoolExecutor(3) as pool:  # concurrent importers race for the counter
            list(pool.map(lambda k: import_products(service, [make_product(f"W{k}-{i:03d}") for i in range(120)]), range(3)))
    finally:
        stop.set()
        reader.join()
    assert seen_gaps == []
    held, cursor = pull_all(service, "dhaka-1", secret, clock)
    assert len(held) == 360 and cursor == 360


def test_a_reader_misses_nothing_while_compaction_merges_segments_under_it(service, clock):
    secret = enroll(service)
    for k in range(12):  # small segments, which compaction merges
        import_products(service, [make_product(f"A{k}-{i:02d}") for i in range(25)])
    stop = threading.Event()
    problems = []
    txns = transactions(service)

    def read_continuously():
        while not stop.is_set():
            held, _ = pull_all(service, "dhaka-1", secret, clock, limit=37)
            versions = sorted(e.version for e in held.values())
            if len(versions) < 300 or versions != list(range(1, len(versions) + 1)):
                problems.append(versions)

    def compact_continuously():
        while not stop.is_set():
            try:
                service.purge_tombstones()
            except Conflict:
                pass

    threads = [threading.Thread(target=read_continuously), threading.Thread(target=compact_continuously)]
    for t in threads:
        t.start()
    try:
        for k in range(6):  # importers keep adding small segments meanwhile
            import_products(service, [make_product(f"B{k}-{i:02d}") for i in range(25)])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert problems == []
    assert len(txns) > 6 + 1  # the compactor did merge segments meanwhile
    held, cursor = pull_all(service, "dhaka-1", secret, clock)
    assert len(held) == 450 and cursor == 450


def test_purging_tombstones_sends_branches_behind_the_horizon_to_a_full_resync(service, clock):
    secret = enroll(service)
    import_products(service, [make_product(f"OLD{i}") for i in range(3)])  # versions 1-3
    import_products(service, [make_product("KEEP")])  # version 4
    for i in range(3):
        service.delete_sku(f"OLD{i}")  # tombstones 5-7
    import_products(service, [make_product(f"OLD{i}") for i in range(2)] + [make_product("NEW")])  # 8-10 replace 5-6
    # Tombstone 7 is newer than the live KEEP (4): it must stay. Nothing is purged.
    assert service.purge_tombstones() == 0
    import_products(service, [make_product("KEEP", 1)])  # 11: now 7 is the oldest row
    assert service.purge_tombstones() == 1
    assert service.store.get_catalog_counter().counter.tombstone_horizon == 7
    stale = pull(service, "dhaka-1", secret, clock, cursor=6).catalog
    assert stale.full_resync and stale.next_cursor == 0
    held, cursor = pull_all(service, "dhaka-1", secret, clock, limit=2)  # fresh pull never dips under the horizon
    assert sorted(held) == ["KEEP", "NEW", "OLD0", "OLD1"] and cursor == 11
    assert not pull(service, "dhaka-1", secret, clock, cursor=7).catalog.full_resync


def test_a_compaction_leaves_a_fresh_pull_as_small_as_the_live_catalog(service, clock):
    secret = enroll(service)
    for price in (100, 200, 300):  # every product stored three times
        import_products(service, [make_product(f"P{i:02d}", price) for i in range(40)])
    for i in range(10):
        service.delete_sku(f"P{i:02d}")
    import_products(service, [make_product(f"P{i:02d}", 400) for i in range(10, 40)])  # tombstones now oldest
    result = service.compact_catalog()
    assert (result.purged, result.entries_before, result.entries_after) == (10, 40 * 3 + 10 + 30, 30)
    assert result.segments_after < result.segments_before and result.tombstone_horizon == 130
    page = pull(service, "dhaka-1", secret, clock, cursor=0).catalog
    assert len(page.entries) == 30 and not page.more
    assert {e.sku: e.product.price for e in page.entries} == {f"P{i:02d}": 400 for i in range(10, 40)}
    again = service.compact_catalog()
    assert (again.purged, again.entries_before, again.entries_after) == (0, 30, 30)


class Till:
    """A branch's catalog as branch_client/sync.py keeps it: entries by SKU, a cursor, resync on request."""

    def __init__(self, service, name, secret, clock, limit=1000):
        self.service, self.name, self.secret, self.clock, self.limit = service, name, secret, clock, limit
        self.held, self.cursor, self.resyncs = {}, 0, 0

    def sync(self):
        while True:
            page = pull(self.service, self.name, self.secret, self.clock, cursor=self.cursor, limit=self.limit).catalog
            if page.full_resync:
                self.held, self.cursor, self.resyncs = {}, 0, self.resyncs + 1
                continue
            for e in page.entries:
                self.held[e.sku] = e
            self.cursor = page.next_cursor
            if not page.more:
                return self

    def products(self):
        return {sku: e.product for sku, e in self.held.items() if not e.deleted}


def live_catalog(service):
    """{sku: product} of every live product, read from the catalog's own index and segments."""
    index = {sku: e for b in service.store.get_catalog_index().values() for sku, e in b.entries.items()}
    rows = {(r.sku, r.version): r.product for s in service.store.scan_catalog() for r in s.rows}
    return {sku: rows[(sku, e.version)] for sku, e in index.items() if not e.deleted}


def test_a_compaction_between_a_pulls_counter_and_segment_reads_sends_the_branch_to_a_full_resync(service, clock):
    secret = enroll(service)
    import_products(service, [make_product(f"P{i}") for i in range(4)])  # 1-4
    till = Till(service, "dhaka-1", secret, clock).sync()
    service.delete_sku("P0")  # 5
    import_products(service, [make_product(f"P{i}", 200) for i in range(1, 4)])  # 6-8: tombstone 5 is now purgeable
    read = service.store.read_catalog

    def compaction_lands_first(after_version, min_entries):
        service.store.read_catalog = read
        assert service.purge_tombstones() == 1
        return read(after_version, min_entries)

    service.store.read_catalog = compaction_lands_first  # the pull has read the counter already
    page = pull(service, "dhaka-1", secret, clock, cursor=till.cursor).catalog
    assert page.full_resync and page.entries == []
    assert till.sync().products() == live_catalog(service) and "P0" not in till.products()


def test_branches_pulling_while_compaction_purges_tombstones_end_with_exactly_the_live_catalog(service, clock):
    """Real threads against Azurite: tills pull in small pages while a compaction purges the
    tombstones they have not seen yet; every till must end holding exactly the live catalog."""
    tills = [Till(service, f"till-{k}", enroll(service, f"till-{k}"), clock, limit=2) for k in range(4)]
    rounds, previous, misses = 20, [], []
    for r in range(rounds):
        current = [f"R{r}-{i}" for i in range(6)]
        import_products(service, [make_product(sku) for sku in current])
        for till in tills:
            till.sync()
        for sku in previous + current[:2]:
            service.delete_sku(sku)  # tombstones the tills have not pulled yet...
        previous = current[2:]
        import_products(service, [make_product(sku, 200 + r) for sku in previous])  # ...now older than every live product
        start = threading.Barrier(len(tills) + 1)

        def compact():
            start.wait()
            service.purge_tombstones()

        def catch_up(till):
            start.wait()
            till.sync()

        threads = [threading.Thread(target=compact)] + [threading.Thread(target=catch_up, args=(t,)) for t in tills]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        live = live_catalog(service)
        assert sorted(live) == sorted(previous)
        misses += [(r, till.name) for till in tills if till.products() != live]
    assert misses == [], f"{len(misses)} of {rounds * len(tills)} catch-ups missed a delete"
    # The compactions did purge: the catalog holds no more than the live products.
    assert sum(len(s.rows) for s in service.store.scan_catalog()) == len(previous)


# --- admin ---------------------------------------------------------------------------------


def test_branch_list_shows_sales_totals_pulls_and_the_last_error(service, clock):
    secret = enroll(service, "dhaka-1")
    service.create_branch("chittagong-2", "https://x")
    batch = make_batch("dhaka-1", range(1, 4))
    push(service, batch, secret)
    push(service, make_batch("dhaka-1", [4]), "A" * 43)
    pull(service, "dhaka-1", secret, clock)
    infos = {b.branch: b for b in service.list_branches().branches}
    assert list(infos) == ["chittagong-2", "dhaka-1"]
    d = infos["dhaka-1"]
    assert (d.enrolled, d.applied_through, d.sales_applied) == (True, 3, 3)
    assert d.total_paisa == sum(s.total for s in batch.sales)
    assert d.last_pull == clock.now and d.last_push == batch.sent_at and "bad_signature" in d.last_error
    c = infos["chittagong-2"]
    assert (c.enrolled, c.applied_through, c.last_pull) == (False, 0, None)


def test_export_pages_through_applied_sales_in_seq_order_and_resumes_from_next(service):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", range(1, 8)), secret)
    push(service, make_batch("dhaka-1", range(8, 13)), secret)
    seen, after = [], None
    while True:
        page = service.export_sales("dhaka-1", after, limit=5)
        seen += [a.sale.seq for a in page.sales]
        if page.next is None:
            break
        after = page.next
    assert seen == list(range(1, 13))
    assert all(a.branch == "dhaka-1" for a in service.export_sales("dhaka-1").sales)


def test_export_stops_at_applied_through_while_a_gap_waits(service):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", range(1, 4)), secret)
    push(service, make_batch("dhaka-1", range(7, 10)), secret)  # 4-6 still missing
    page = service.export_sales("dhaka-1")
    assert [a.sale.seq for a in page.sales] == [1, 2, 3] and page.next is None
    # Resume from the last seq exported, after the gap fills: nothing is skipped.
    token = service.export_sales("dhaka-1", limit=2).next
    push(service, make_batch("dhaka-1", range(4, 7)), secret)
    assert [a.sale.seq for a in service.export_sales("dhaka-1", token).sales] == list(range(3, 10))


def test_export_without_a_branch_goes_branch_by_branch(service):
    for name in ("b-two", "a-one"):
        push(service, make_batch(name, range(1, 4)), enroll(service, name))
    seen, after = [], None
    while True:
        page = service.export_sales(None, after, limit=2)
        seen += [(a.branch, a.sale.seq) for a in page.sales]
        if not page.next:
            break
        after = page.next
    assert seen == [("a-one", 1), ("a-one", 2), ("a-one", 3), ("b-two", 1), ("b-two", 2), ("b-two", 3)]


@pytest.mark.parametrize("after", ["garbage", base64.urlsafe_b64encode(b'{"b":"x","c":5,"s":2}').decode()])
def test_an_export_token_that_was_not_given_out_is_refused(service, after):
    with pytest.raises(ContractError) as err:
        service.export_sales(None, after)
    assert err.value.code == ErrorCode.BAD_REQUEST


def test_exporting_an_unknown_branch_is_not_found(service):
    with pytest.raises(ContractError) as err:
        service.export_sales("ghost-1")
    assert err.value.code == ErrorCode.NOT_FOUND


@pytest.mark.parametrize("call", [
    lambda svc, text: svc.delete_sku(text),
    lambda svc, text: svc.export_sales(branch=text),
    lambda svc, text: svc.get_dead_letter(text),
], ids=["sku", "branch", "dead letter id"])
def test_a_refused_route_or_query_value_is_quoted_shortened_in_the_error(service, call):
    # These were echoed whole: as long as the URL, in the 400 body and the log line.
    with pytest.raises(ContractError) as err:
        call(service, "x\n" * 5000)
    assert err.value.code == ErrorCode.BAD_REQUEST
    assert len(err.value.message) < 200 and "\n" not in err.value.message and "'x\\nx\\n" in err.value.message
