"""Barcodes, without I/O: EAN-13 check digits and the weight or price a shop's scale prints into one.

GS1 leaves EAN-13 codes starting 20-29 to each company for restricted circulation (RCN):
shops use them for goods weighed or priced in store. A scale's label then reads

    PP IIIII VVVVV C        prefix, item code, value (grams or paisa), check digit
    PP IIII  R VVVVV C      the same with a price (or measure) verifier digit R before the value

How many digits the item code takes, what the value means and whether a verifier digit is
printed is each shop's choice, so `EmbeddedRule` holds it; `parse_embedded` applies it.
The verifier digit is GS1's (General Specifications, "price/measure verifier digit"): a
weighted sum over a 4- or 5-digit value with the factors 2-, 2-, 3, 5- or 5+, 2-, 5-, 5+, 2-.
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

EAN13_DIGITS = 13
PREFIX_DIGITS = 2
RCN_PREFIXES = tuple(str(n) for n in range(20, 30))


class Value(StrEnum):
    WEIGHT = "weight"  # grams (thousandths of a kg or litre)
    PRICE = "price"    # paisa


@dataclass(frozen=True)
class EmbeddedRule:
    """How this shop's scales build their EAN-13 labels."""

    prefixes: tuple[str, ...] = RCN_PREFIXES
    item_digits: int = 5
    value: Value = Value.WEIGHT
    verifier: bool = False

    @property
    def value_digits(self) -> int:
        return EAN13_DIGITS - PREFIX_DIGITS - self.item_digits - (1 if self.verifier else 0) - 1

    def problem(self) -> str | None:
        """Why this rule cannot be used, or None."""
        if not self.prefixes:
            return "no prefix is set: give at least one of 20-29, e.g. 20-29 or 21,22"
        bad = [p for p in self.prefixes if p not in RCN_PREFIXES]
        if bad:
            return f"prefix {bad[0]} is not one of 20-29 (GS1 keeps only those for in-store codes)"
        if not 1 <= self.value_digits <= 6 or self.item_digits < 1:
            return f"{self.item_digits} item digits leave no room for the value; use 4 to 6"
        if self.verifier and self.value_digits not in (4, 5):
            return f"a verifier digit needs a 4- or 5-digit value, and {self.item_digits} item digits leave " \
                   f"{self.value_digits}; use 4 or 5 item digits"
        return None


@dataclass(frozen=True)
class Embedded:
    """What a scale label says: which product (its codes to look up) and how much."""

    code: str
    item: str
    value: Value
    amount: int  # grams or paisa

    @property
    def lookup_codes(self) -> tuple[str, str]:
        """The catalog barcodes this label's product may carry: the label with its value (and
        verifier) zeroed and a fresh check digit, as a scale's product list shows it; or the
        prefix and item code alone."""
        head = self.code[:PREFIX_DIGITS] + self.item
        base = head.ljust(EAN13_DIGITS - 1, "0")
        return base + check_digit(base), head


def check_digit(first12: str) -> str:
    """The EAN-13 (GTIN) check digit of 12 digits: weights 1, 3 from the left, to the next ten."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str(-total % 10)


def is_ean13(code: str) -> bool:
    return len(code) == EAN13_DIGITS and code.isascii() and code.isdigit() and check_digit(code[:12]) == code[12]


# GS1's weighted products for the verifier digit, indexed by the digit.
_TWO_MINUS = (0, 2, 4, 6, 8, 9, 1, 3, 5, 7)
_THREE = (0, 3, 6, 9, 2, 5, 8, 1, 4, 7)
_FIVE_PLUS = (0, 5, 1, 6, 2, 7, 3, 8, 4, 9)
_FIVE_MINUS = (0, 5, 9, 4, 8, 3, 7, 2, 6, 1)


def verifier_digit(value: str) -> str:
    """The price/measure verifier digit of a 4- or 5-digit value."""
    d = [int(c) for c in value]
    if len(d) == 4:
        total = _TWO_MINUS[d[0]] + _TWO_MINUS[d[1]] + _THREE[d[2]] + _FIVE_MINUS[d[3]]
        return str(total * 3 % 10)
    if len(d) == 5:
        total = _FIVE_PLUS[d[0]] + _TWO_MINUS[d[1]] + _FIVE_MINUS[d[2]] + _FIVE_PLUS[d[3]] + _TWO_MINUS[d[4]]
        return str(_FIVE_MINUS.index(-total % 10))
    raise ValueError("a verifier digit is defined for 4 or 5 digits only")


class BadLabel(ValueError):
    """A scale label that follows the shop's layout but cannot be right (misread or misprinted)."""


def parse_embedded(code: str, rule: EmbeddedRule) -> Embedded | None:
    """The label's item and value when `code` is an EAN-13 under one of the rule's prefixes,
    else None (an ordinary code). A wrong check or verifier digit raises BadLabel: a misread
    label must not sell the wrong amount."""
    if len(code) != EAN13_DIGITS or not (code.isascii() and code.isdigit()) or code[:PREFIX_DIGITS] not in rule.prefixes:
        return None
    if check_digit(code[:12]) != code[12]:
        raise BadLabel(f"code {code} has a wrong check digit: scan it again, or type the weight")
    item = code[PREFIX_DIGITS: PREFIX_DIGITS + rule.item_digits]
    value = code[12 - rule.value_digits: 12]
    if rule.verifier and verifier_digit(value) != code[PREFIX_DIGITS + rule.item_digits]:
        raise BadLabel(f"code {code} has a wrong {rule.value.value} verifier digit: scan it again, or reprint the label")
    return Embedded(code=code, item=item, value=rule.value, amount=int(value))


def grams_to_units(grams: int, unit: str) -> Decimal:
    """A label's grams as a quantity of `unit`: the grams themselves for g or ml, else thousandths (kg, litre)."""
    if unit.strip().lower() in ("g", "gm", "ml"):
        return Decimal(grams)
    return Decimal(grams).scaleb(-3).normalize() if grams % 1000 else Decimal(grams // 1000)
