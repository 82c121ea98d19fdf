import uuid
import zlib
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from shared import encoding
from shared.encoding import (MAGIC, Packer, WireEvent, batch_head, encode_batch, from_queue_text, open_frame,
                             pack_sales, parse_frame)
from shared.errors import ContractError, ErrorCode
from shared.limits import QUEUE_MESSAGE_BUDGET_CHARS
from shared.models import Payment, Sale, SaleLine, SalesBatch
from shared.money import line_total
from shared.signing import mac, new_secret

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=timezone.utc)


def sale(seq: int, n_lines: int = 2) -> Sale:
    lines = [SaleLine(sku=f"SKU-{seq}-{i}", name="মসুর ডাল Lentils", qty=Decimal("1.5"), unit_price=12000,
                      list_price=12000, line_total=line_total(Decimal("1.5"), 12000)) for i in range(n_lines)]
    total = sum(l.line_total for l in lines)
    return Sale(seq=seq, sale_id=uuid.uuid4().hex, recorded_at=NOW, lines=lines,
                payment=Payment(method="cash", amount=total), total=total)


def test_a_batch_round_trips_through_a_queue_message():
    secret = new_secret()
    batch = SalesBatch(branch="dhaka-1", sent_at=NOW, sales=[sale(1), sale(2)])
    text = encode_batch(batch, secret)
    assert open_frame(parse_frame(from_queue_text(text)), secret) == batch


def test_a_message_signed_with_another_secret_is_refused_before_decompression():
    text = encode_batch(SalesBatch(branch="dhaka-1", sent_at=NOW, sales=[sale(1)]), new_secret())
    with pytest.raises(ContractError) as err:
        open_frame(parse_frame(from_queue_text(text)), new_secret())
    assert err.value.code == ErrorCode.BAD_SIGNATURE


def test_a_batch_claiming_another_branch_inside_a_valid_frame_is_refused():
    secret = new_secret()
    inner = zlib.compress(SalesBatch(branch="victim", sent_at=NOW, sales=[sale(1)]).model_dump_json().encode())
    head = MAGIC + bytes([len(b"thief")]) + b"thief"
    body = head + mac(secret, head + inner) + inner
    with pytest.raises(ContractError) as err:
        open_frame(parse_frame(body), secret)
    assert err.value.code == ErrorCode.FORBIDDEN


def test_a_compression_bomb_is_refused_as_oversized():
    secret = new_secret()
    inner = zlib.compress(b"{" + b" " * (8 * 1024 * 1024) + b"}", 9)
    head = MAGIC + bytes([2]) + b"b1"
    body = head + mac(secret, head + inner) + inner
    with pytest.raises(ContractError) as err:
        open_frame(parse_frame(body), secret)
    assert err.value.code == ErrorCode.OVERSIZED_MESSAGE


@pytest.mark.parametrize("body", [b"", b"XXXX", MAGIC, MAGIC + b"\x05ab", MAGIC + b"\x02b1" + b"x" * 10])
def test_truncated_or_foreign_frames_are_malformed(body):
    with pytest.raises(ContractError) as err:
        parse_frame(body)
    assert err.value.code == ErrorCode.MALFORMED_MESSAGE


def test_not_base64_is_malformed():
    with pytest.raises(ContractError) as err:
        from_queue_text("not base64 !!")
    assert err.value.code == ErrorCode.MALFORMED_MESSAGE


def test_pack_sales_keeps_every_sale_in_order_and_every_message_within_budget():
    secret = new_secret()
    sales = [sale(i, n_lines=1 + i % 7) for i in range(1, 6001)]
    packed = pack_sales("dhaka-1", sales, secret, NOW)
    assert [s.seq for chunk, _ in packed for s in chunk] == list(range(1, 6001))
    assert all(len(text) <= QUEUE_MESSAGE_BUDGET_CHARS for _, text in packed)
    # Far fewer messages than sales: that is what keeps queue and storage costs down.
    assert len(packed) * 50 < len(sales)
    for chunk, text in packed:
        assert open_frame(parse_frame(from_queue_text(text)), secret).sales == chunk


def test_a_dead_letter_reason_quotes_a_hostile_field_name_only_shortened():
    secret = new_secret()
    body = b'{"v": 1, "branch": "b1", "sent_at": "2026-11-28T07:00:00Z", "sales": [], "' + b"\x01" * 100_000 + b'": 1}'
    head = MAGIC + bytes([2]) + b"b1"
    compressed = zlib.compress(body)
    with pytest.raises(ContractError) as err:
        open_frame(parse_frame(head + mac(secret, head + compressed) + compressed), secret)
    assert err.value.code == ErrorCode.MALFORMED_MESSAGE and len(err.value.message) < 400


def test_pack_sales_starts_a_new_message_where_the_record_version_changes():
    from tests.builders import make_sale, make_sale3

    sales = [make_sale(1), make_sale(2), make_sale3(3), make_sale3(4), make_sale(5)]
    packed = pack_sales("dhaka-1", sales, "k" * 43, datetime(2026, 11, 28, tzinfo=timezone.utc))
    assert [[s.seq for s in chunk] for chunk, _ in packed] == [[1, 2], [3, 4], [5]]
    versions = [open_frame(parse_frame(from_queue_text(text)), "k" * 43).v for _, text in packed]
    assert versions == [1, 3, 1]


# --- packing stored events without models ------------------------------------------------------


def _every_kind_of_event():
    """v1 sales and a v1 void, then v3 sales, a v3 void, a refund and a shift close (ascending seq)."""
    from tests.builders import make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void, make_void3

    v1 = [make_sale(1), make_sale(2)]
    v1.append(make_void(3, v1[0]))
    sold = make_sale3(4, [make_line3("RICE-5KG", "2"), make_line3("DAL-1KG", "1.250", 15000)], discount=("percent", "5"))
    v3 = [sold, make_sale3(5), make_void3(6, make_sale3(5)), make_refund(7, sold, [(1, "1", 20000)]), make_shift_close(8)]
    return v1, v3


@pytest.mark.parametrize("generation", [1, 2])
def test_a_message_packed_from_stored_json_is_the_batch_the_models_make_byte_for_byte(generation):
    v1, v3 = _every_kind_of_event()
    secret = new_secret()
    sent_at = datetime(2026, 12, 1, 19, 17, 3, 120034, tzinfo=timezone.utc)
    packer = Packer("dhaka-1", secret, lambda: sent_at, generation=generation)
    packed = packer.add([WireEvent.of(s) for s in v1 + v3]) + packer.finish()
    assert [[e.seq for e in events] for events, _ in packed] == [[1, 2, 3], [4, 5, 6, 7, 8]]
    for (events, text), sales in zip(packed, (v1, v3)):
        batch = SalesBatch.of("dhaka-1", generation, sent_at, sales)
        frame = parse_frame(from_queue_text(text))
        # What the cloud opens is the models' batch, and the JSON inside is what the models write.
        assert open_frame(frame, secret) == batch
        assert zlib.decompress(frame.compressed) == batch.model_dump_json().encode()
    assert [open_frame(parse_frame(from_queue_text(t)), secret).v for _, t in packed] == (
        [1, 3] if generation == 1 else [2, 3])


def test_a_batch_head_writes_sent_at_as_the_model_does_in_any_time_zone():
    from datetime import timedelta

    from tests.builders import make_sale

    dhaka = timezone(timedelta(hours=6))
    for moment in (datetime(2026, 12, 1, 1, 2, 3, tzinfo=dhaka), datetime(2026, 12, 1, 1, 2, 3, 5, tzinfo=timezone.utc)):
        batch = SalesBatch.of("b_1-x", 1, moment, [make_sale(1)])
        assert batch.model_dump_json().startswith(batch_head("b_1-x", 1, False, moment))


def varied_sales(count: int) -> list[Sale]:
    """Sales of 1 to 4 lines of products with varied Bangla and English names (they compress as a till's do)."""
    import random

    rng = random.Random(count)
    words = ["চাল", "ডাল", "তেল", "লবণ", "চিনি", "Rice", "Lentils", "Oil", "Salt", "Sugar", "Tea", "চা", "আটা", "Flour"]
    out = []
    for seq in range(1, count + 1):
        lines = [SaleLine(sku=f"SKU-{rng.randrange(10**6):06d}", name=" ".join(rng.sample(words, 3)), qty=Decimal(q),
                          unit_price=p, list_price=p, line_total=line_total(Decimal(q), p))
                 for q, p in ((rng.choice(["1", "2", "0.750"]), rng.randrange(500, 90000)) for _ in range(rng.randint(1, 4)))]
        total = sum(line.line_total for line in lines)
        out.append(Sale(seq=seq, sale_id=uuid.UUID(int=rng.getrandbits(128)).hex, recorded_at=NOW, lines=lines,
                        payment=Payment(method="cash", amount=total), total=total))
    return out


def test_each_message_of_a_backlog_is_compressed_once_after_the_first(monkeypatch):
    calls = []
    compress = encoding.compress
    monkeypatch.setattr(encoding, "compress", lambda raw: calls.append(len(raw)) or compress(raw))
    sales = varied_sales(3000)
    packed = pack_sales("dhaka-1", sales, new_secret(), NOW)
    # The first message is guessed, then fitted; the others are fitted by the last one's ratio.
    assert len(packed) > 5 and len(calls) <= len(packed) + 2
    # ... and still nearly full: every message but the last fills 90% of the budget or more.
    assert all(len(text) >= QUEUE_MESSAGE_BUDGET_CHARS * 0.9 for _, text in packed[:-1])


def test_a_packer_fed_round_by_round_packs_as_tightly_as_at_once():
    sales = varied_sales(2000)
    events = [WireEvent.of(s) for s in sales]
    at_once = pack_sales("dhaka-1", sales, "k" * 43, NOW)
    packer = Packer("dhaka-1", "k" * 43, lambda: NOW)
    rounds = [m for i in range(0, 2000, 300) for m in packer.add(events[i:i + 300])] + packer.finish()
    assert [e.seq for events, _ in rounds for e in events] == list(range(1, 2001))
    assert abs(len(rounds) - len(at_once)) <= 1


def test_a_packer_that_sets_aside_keeps_an_event_too_large_alone_and_packs_those_behind_it():
    from tests.branch_client.fakes import bulky_sale

    too_large = bulky_sale(2, NOW)
    packer = Packer("dhaka-1", "k" * 43, lambda: NOW, set_aside=True)
    packed = packer.add([WireEvent.of(s) for s in (sale(1), too_large, sale(3))]) + packer.finish()
    assert [[e.seq for e in events] for events, _ in packed] == [[1], [3]]
    [(event, size)] = packer.aside
    assert event.seq == 2 and size > QUEUE_MESSAGE_BUDGET_CHARS
    with pytest.raises(ContractError) as err:
        pack_sales("dhaka-1", [sale(1), too_large], "k" * 43, NOW)
    assert err.value.code == ErrorCode.OVERSIZED_MESSAGE and "sale 2" in err.value.message
