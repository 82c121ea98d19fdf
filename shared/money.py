"""Money and quantities: integer paisa and exact decimals, never floats.

Amounts are read from plain digits only: scientific notation (`1e3`) is refused, and the
size is checked before any arithmetic, so no text can make the decimal module overflow.
"""

from decimal import ROUND_HALF_UP, Decimal, DecimalException, InvalidOperation

from .limits import PAISA_MAX, QTY_MAX, QTY_MAX_DECIMALS

PAISA_PER_TAKA = 100


def _decimal(text: str, what: str, example: str) -> Decimal:
    if isinstance(text, float):
        raise ValueError(f"{what} must be given as text or an integer, not a float")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{what} {text!r} is not a finite number")
    if "e" in str(text).lower():
        raise ValueError(f"{what} {text!r} is in scientific notation; write it in plain digits, e.g. {example}")
    return value


def parse_taka(text: str) -> int:
    """'12.5' -> 1250 paisa. At most 2 decimals, not negative."""
    value = _decimal(text, "price", "120.50")
    if value < 0:
        raise ValueError(f"price {text!r} is negative")
    if value > Decimal(PAISA_MAX) / PAISA_PER_TAKA:
        raise ValueError(f"price {text!r} is too large")
    try:
        if value.as_tuple().exponent < -2 and value != value.quantize(Decimal("0.01")):
            raise ValueError(f"price {text!r} has more than 2 decimals (paisa is the smallest unit)")
        return int(value * PAISA_PER_TAKA)
    except DecimalException:
        raise ValueError(f"price {text!r} is not a usable number; write it in plain digits, e.g. 12.50") from None


def format_taka(paisa: int) -> str:
    """1250 -> '12.50'."""
    sign = "-" if paisa < 0 else ""
    whole, frac = divmod(abs(paisa), PAISA_PER_TAKA)
    return f"{sign}{whole}.{frac:02d}"


def parse_quantity(text: str) -> Decimal:
    """'1.250' -> Decimal('1.250'). Positive, at most 3 decimals (grams of a kilo)."""
    value = _decimal(text, "quantity", "1.5")
    if value <= 0:
        raise ValueError(f"quantity {text!r} must be greater than zero")
    if value > QTY_MAX:
        raise ValueError(f"quantity {text!r} is larger than {QTY_MAX}")
    try:
        if value.as_tuple().exponent < -QTY_MAX_DECIMALS and value != value.quantize(Decimal(1).scaleb(-QTY_MAX_DECIMALS)):
            raise ValueError(f"quantity {text!r} has more than {QTY_MAX_DECIMALS} decimals")
        # One spelling per amount, so '2', '2.0' and '2.000' sign and compare alike.
        return Decimal(int(value)) if value == value.to_integral_value() else value.normalize()
    except DecimalException:
        raise ValueError(f"quantity {text!r} is not a usable number; write it in plain digits, e.g. 1.5") from None


_ONE = Decimal(1)


def line_total(qty: Decimal, unit_price: int) -> int:
    """Quantity times unit price in paisa, rounded half up to a whole paisa."""
    return _half_up(qty * unit_price)


def _half_up(value: Decimal) -> int:
    return int(value.quantize(_ONE, rounding=ROUND_HALF_UP))


def percent_of(base: int, percent: Decimal) -> int:
    """`percent` % of `base` paisa, rounded half up to a whole paisa (a 10% discount of 1005 is 101)."""
    return _half_up(Decimal(base) * percent / 100)


def vat_part(net: int, rate: Decimal) -> int:
    """The VAT inside a VAT-inclusive `net` at `rate` %: net x rate / (100 + rate), rounded half up."""
    if not rate:  # rate 0 (many goods): no VAT, and no division to work it out
        return 0
    return _half_up(Decimal(net) * rate / (100 + rate))


def share_out(amount: int, weights: list[int]) -> list[int]:
    """`amount` paisa split over `weights` in proportion, whole paisa that add up to `amount`.

    Each share is rounded down; the paisa left over go one each to the first weights above
    0 (a sale discount of 100 over lines of 1, 1, 1 is 34, 33, 33). All weights 0: all to the first.
    """
    whole = sum(weights)
    if not weights:
        return []
    if whole == 0:
        return [amount] + [0] * (len(weights) - 1)
    shares = [amount * w // whole for w in weights]
    for i in [i for i, w in enumerate(weights) if w > 0][:amount - sum(shares)]:
        shares[i] += 1
    return shares
