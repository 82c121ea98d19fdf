from decimal import Decimal

import pytest

from headoffice.spreadsheet import safe_cell


@pytest.mark.parametrize("text", ["=1+2", "+880 1711", "-5 taka off", "@SUM(A1)", "\tTAB", "\rCR",
                                  '=HYPERLINK("http://example.invalid")'])
def test_text_a_spreadsheet_would_evaluate_is_prefixed_with_a_single_quote(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["মসুর ডাল", "Rice 5kg", "a=b", "", "'already quoted", -4000, 0, Decimal("-1.5"), None])
def test_other_text_and_every_number_is_left_as_it_is(value):
    assert safe_cell(value) == value
