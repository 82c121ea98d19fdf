import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.models import CatalogEntry, CatalogImport, Payment, Product, Sale, SaleLine, SalesBatch, describe_errors

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=timezone.utc)


def line(**kw):
    base = dict(sku="RICE", name="চাল", qty=Decimal("2"), unit_price=100, list_price=100, line_total=200)
    return SaleLine(**{**base, **kw})


def test_a_line_whose_total_does_not_match_is_refused():
    with pytest.raises(ValidationError, match="line_total"):
        line(line_total=201)


def test_a_sale_total_must_be_the_sum_of_its_lines_and_equal_the_payment():
    with pytest.raises(ValidationError):
        Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=NOW, lines=[line()], payment=Payment(method="cash", amount=200), total=199)
    with pytest.raises(ValidationError):
        Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=NOW, lines=[line()], payment=Payment(method="cash", amount=100), total=200)


def test_a_void_refers_to_an_earlier_sale_and_carries_a_negative_total():
    v = Sale(seq=2, sale_id=uuid.uuid4().hex, kind="void", voids=1, recorded_at=NOW, lines=[],
             payment=Payment(method="cash", amount=-200), total=-200)
    assert v.total == -200
    with pytest.raises(ValidationError):
        Sale(seq=2, sale_id=uuid.uuid4().hex, kind="void", voids=3, recorded_at=NOW, lines=[],
             payment=Payment(method="cash", amount=-200), total=-200)


def test_naive_times_extra_fields_and_control_characters_are_refused():
    with pytest.raises(ValidationError):
        Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=datetime(2026, 1, 1), lines=[line()],
             payment=Payment(method="cash", amount=200), total=200)
    with pytest.raises(ValidationError):
        Product.model_validate({"sku": "A", "name": "x", "price": 1, "colour": "red"})
    with pytest.raises(ValidationError):
        Product(sku="A", name="bad\x00name", price=1)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_time_that_leaves_the_calendar_once_in_utc_is_a_validation_error(moment):
    with pytest.raises(ValidationError, match="years 1 to 9999"):
        SalesBatch.model_validate({"branch": "b1", "sent_at": moment, "sales": []})


def test_negative_prices_and_floats_for_quantities_with_too_many_decimals_are_refused():
    with pytest.raises(ValidationError):
        Product(sku="A", name="x", price=-1)
    with pytest.raises(ValidationError):
        line(qty=Decimal("0.0001"))


def test_batches_must_be_in_ascending_order():
    s1 = Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=NOW, lines=[line()], payment=Payment(method="cash", amount=200), total=200)
    s2 = s1.model_copy(update={"seq": 2})
    with pytest.raises(ValidationError):
        SalesBatch(branch="b1", sent_at=NOW, sales=[s2, s1])


def test_a_tombstone_has_no_product_and_a_live_entry_has_one():
    assert CatalogEntry(version=3, sku="A", deleted=True).product is None
    with pytest.raises(ValidationError):
        CatalogEntry(version=3, sku="A", deleted=False)


def test_bangla_names_round_trip_through_json():
    p = Product(sku="DAL-1", name="মসুর ডাল ১ কেজি", price=14000)
    assert Product.model_validate_json(p.model_dump_json()).name == "মসুর ডাল ১ কেজি"


def test_a_validation_error_echoes_a_hostile_field_name_or_value_only_shortened_and_escaped():
    # Unknown keys and quoted values once reached error bodies and log lines whole (100 KB, newlines).
    body = ('{"products": [{"sku": "A", "name": "x", "price": 1, "k\\n' + "y" * 100_000 + '": 1},'
            ' {"sku": "B", "name": "x", "price": 1, "vat_rate": "1' + "0" * 100_000 + '"}]}')
    with pytest.raises(ValidationError) as err:
        CatalogImport.model_validate_json(body)
    text = describe_errors(err.value, 3)
    assert len(text) < 600 and "\n" not in text
    assert text.startswith("products.0.k\\nyyy") and "products.1.vat_rate" in text
