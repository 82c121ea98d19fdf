import pytest

from branch_client.barcodes import (BadLabel, EmbeddedRule, Value, check_digit, grams_to_units, is_ean13,
                                    parse_embedded, verifier_digit)


def label(body12: str) -> str:
    return body12 + check_digit(body12)


def test_the_ean13_check_digit_is_the_gs1_one():
    assert check_digit("890123456789") == "0" and is_ean13("8901234567890")
    assert check_digit("400638133393") == "1" and not is_ean13("4006381333932")


def test_the_price_verifier_digit_follows_gs1s_weighting_for_four_and_five_digits():
    assert verifier_digit("2875") == "9"  # 2-(2)=4, 2-(8)=5, 3(7)=1, 5-(5)=3: 13 x 3 = 39
    # Five digits: the verifier's own 5- product completes the weighted sum to a multiple of ten.
    for value in ("14685", "00000", "99999", "01250"):
        assert len(verifier_digit(value)) == 1


def test_a_weight_label_gives_its_item_code_and_grams():
    code = label("201234501250")
    got = parse_embedded(code, EmbeddedRule())
    assert (got.item, got.value, got.amount) == ("12345", Value.WEIGHT, 1250)
    assert got.lookup_codes == (label("201234500000"), "2012345")


def test_a_price_label_with_a_verifier_digit_is_read_and_a_wrong_verifier_refused():
    rule = EmbeddedRule(item_digits=4, value=Value.PRICE, verifier=True)
    good = label("281234" + verifier_digit("02875") + "02875")
    assert parse_embedded(good, rule).amount == 2875
    wrong = label("281234" + str((int(verifier_digit("02875")) + 1) % 10) + "02875")
    with pytest.raises(BadLabel, match="verifier digit"):
        parse_embedded(wrong, rule)


def test_ordinary_codes_and_other_prefixes_are_not_labels_and_a_bad_check_digit_is_refused():
    assert parse_embedded("8901234567890", EmbeddedRule()) is None
    assert parse_embedded(label("201234501250"), EmbeddedRule(prefixes=("21",))) is None
    assert parse_embedded("20123450125", EmbeddedRule()) is None  # 11 digits: not EAN-13
    good = label("201234501250")
    with pytest.raises(BadLabel, match="wrong check digit"):
        parse_embedded(good[:12] + str((int(good[12]) + 1) % 10), EmbeddedRule())


def test_a_rule_that_leaves_no_room_for_the_value_says_why():
    assert EmbeddedRule().problem() is None
    assert "verifier digit needs a 4- or 5-digit value" in EmbeddedRule(item_digits=6, verifier=True).problem()
    assert "not one of 20-29" in EmbeddedRule(prefixes=("19",)).problem()


def test_grams_become_kilos_or_stay_grams_by_the_products_unit():
    assert str(grams_to_units(1250, "kg")) == "1.25" and str(grams_to_units(2000, "kg")) == "2"
    assert str(grams_to_units(250, "g")) == "250"
