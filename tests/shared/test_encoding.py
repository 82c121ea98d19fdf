import uuid
import zlib
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from shared.encoding import MAGIC, encode_batch, from_queue_text, open_frame, pack_sales, parse_frame
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
