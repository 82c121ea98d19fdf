from decimal import Decimal

import pytest

from shared import money
from shared.money import format_taka, line_total, parse_quantity, parse_taka


@pytest.mark.parametrize("text,paisa", [("0", 0), ("12", 1200), ("12.5", 1250), ("12.50", 1250), ("0.01", 1), ("420.00", 42000)])
def test_taka_text_becomes_integer_paisa(text, paisa):
    assert parse_taka(text) == paisa


@pytest.mark.parametrize("text", ["-1", "1.001", "abc", "", "nan", "inf", "1e20"])
def test_bad_prices_are_refused_with_a_reason(text):
    with pytest.raises(ValueError):
        parse_taka(text)


def test_floats_are_refused_for_money():
    with pytest.raises(ValueError, match="float"):
        parse_taka(12.5)


def test_paisa_format_back_to_taka():
    assert format_taka(1250) == "12.50"
    assert format_taka(-5) == "-0.05"


def test_quantities_are_exact_decimals_with_one_spelling():
    assert parse_quantity("1.250") == Decimal("1.25")
    assert str(parse_quantity("2.000")) == "2"
    assert str(parse_quantity("10")) == "10"


@pytest.mark.parametrize("text", ["0", "-1", "0.0001", "x", "100001"])
def test_bad_quantities_are_refused(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_line_total_rounds_half_up_to_a_paisa():
    assert line_total(Decimal("0.333"), 1000) == 333
    assert line_total(Decimal("0.5"), 3) == 2
    assert line_total(Decimal("1.25"), 42000) == 52500


@pytest.mark.parametrize("parse, text", [(parse_taka, "1e10000000"), (parse_taka, "1E3"), (parse_taka, "12.5e1"),
                                         (parse_quantity, "1e-10000000"), (parse_quantity, "2E0")])
def test_scientific_notation_is_refused_with_a_hint_to_write_plain_digits(parse, text):
    with pytest.raises(ValueError, match="scientific notation.*plain digits"):
        parse(text)


@pytest.mark.parametrize("parse, text", [(parse_taka, "1" * 40 + ".001"), (parse_taka, "9" * 400),
                                         (parse_quantity, "1" * 40 + ".0001")])
def test_amounts_far_too_large_are_refused_as_values_not_arithmetic_errors(parse, text):
    with pytest.raises(ValueError, match="too large|larger than"):
        parse(text)


def test_a_percent_discount_and_the_vat_part_round_half_up_to_a_whole_paisa():
    assert money.percent_of(1005, Decimal("10")) == 101   # 100.5
    assert money.percent_of(1004, Decimal("10")) == 100   # 100.4
    assert money.vat_part(10500, Decimal("5")) == 500
    assert money.vat_part(74600, Decimal("5")) == 3552     # 3552.38
    assert money.vat_part(21, Decimal("5")) == 1           # exactly 1.0
    assert money.vat_part(1000, Decimal("0")) == 0


def test_a_shared_out_discount_adds_up_and_gives_the_leftover_paisa_to_the_first_lines():
    assert money.share_out(100, [1, 1, 1]) == [34, 33, 33]
    assert money.share_out(1000, [75600, 18000]) == [808, 192]
    assert money.share_out(2, [0, 5, 5]) == [0, 1, 1]
    assert money.share_out(7, [0, 0]) == [7, 0]
