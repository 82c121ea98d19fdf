"""Money and quantities: integer paisa and exact decimals, never floats."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .limits import PAISA_MAX, QTY_MAX, QTY_MAX_DECIMALS

PAISA_PER_TAKA = 100


def _decimal(text: str, what: str) -> Decimal:
    if isinstance(text, float):
        raise ValueError(f"{what} must be given as text or an integer, not a float")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


def parse_taka(text: str) -> int:
    """'12.5' -> 1250 paisa. At most 2 decimals, not negative."""
    value = _decimal(text, "price")
    if value < 0:
        raise ValueError(f"price {text!r} is negative")
    if value.as_tuple().exponent < -2 and value != value.quantize(Decimal("0.01")):
        raise ValueError(f"price {text!r} has more than 2 decimals (paisa is the smallest unit)")
    paisa = int(value * PAISA_PER_TAKA)
    if paisa > PAISA_MAX:
        raise ValueError(f"price {text!r} is too large")
    return paisa


def format_taka(paisa: int) -> str:
    """1250 -> '12.50'."""
    sign = "-" if paisa < 0 else ""
    whole, frac = divmod(abs(paisa), PAISA_PER_TAKA)
    return f"{sign}{whole}.{frac:02d}"


def parse_quantity(text: str) -> Decimal:
    """'1.250' -> Decimal('1.250'). Positive, at most 3 decimals (grams of a kilo)."""
    value = _decimal(text, "quantity")
    if value <= 0:
        raise ValueError(f"quantity {text!r} must be greater than zero")
    if value.as_tuple().exponent < -QTY_MAX_DECIMALS and value != value.quantize(Decimal(1).scaleb(-QTY_MAX_DECIMALS)):
        raise ValueError(f"quantity {text!r} has more than {QTY_MAX_DECIMALS} decimals")
    if value > QTY_MAX:
        raise ValueError(f"quantity {text!r} is larger than {QTY_MAX}")
    # One spelling per amount, so '2', '2.0' and '2.000' sign and compare alike.
    return Decimal(int(value)) if value == value.to_integral_value() else value.normalize()


def line_total(qty: Decimal, unit_price: int) -> int:
    """Quantity times unit price in paisa, rounded half up to a whole paisa."""
    return int((qty * unit_price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
