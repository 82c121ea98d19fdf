"""The branch's own settings, without I/O: names, defaults and how each value is read.

They live in the branch database next to the identity (the `meta` table, key `setting.NAME`),
are set with `branchsync config set NAME VALUE`, are never sent to head office, and are read
afresh by each command and each till request, so a change needs no restart.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .barcodes import RCN_PREFIXES, EmbeddedRule, Value
from .errors import BadInput

META_PREFIX = "setting."
DHAKA = "Asia/Dhaka"
# Bangladesh keeps UTC+6 all year (no daylight saving since 2009); Windows has no zone database
# unless the tzdata package is installed, so this zone is known without one.
_FIXED = {DHAKA: timezone(timedelta(hours=6), DHAKA), "UTC": timezone.utc}


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name in _FIXED:
            return _FIXED[name]
        raise BadInput(f"time zone {name!r} is not known; give one like Asia/Dhaka") from None


def _text(value: str) -> str:
    return " ".join(value.split())[:80]


def _bin(value: str) -> str:
    digits = value.replace("-", "").replace(" ", "")
    if digits and not (digits.isascii() and digits.isdigit() and 9 <= len(digits) <= 13):
        raise BadInput(f"BIN {value!r} is not a VAT registration number: 9 to 13 digits, e.g. 000123456-0101")
    return value.strip()


def _zone_name(value: str) -> str:
    zone(value.strip())
    return value.strip()


def _prefixes(value: str) -> str:
    out: list[str] = []
    for part in value.replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())):
            raise BadInput(f"prefixes {value!r}: write them like 20-29 or 21,22,28")
        out += [str(n) for n in range(int(first), int(last or first) + 1)]
    if not out or any(p not in RCN_PREFIXES for p in out):
        raise BadInput(f"prefixes {value!r}: only 20 to 29 are in-store codes (GS1); e.g. 20-29 or 21,22")
    return ",".join(sorted(set(out)))


def _digits(value: str) -> str:
    if not (value.strip().isdigit() and 4 <= int(value) <= 6):
        raise BadInput(f"item digits {value!r}: give 4, 5 or 6")
    return str(int(value))


def _value(value: str) -> str:
    try:
        return Value(value.strip().lower()).value
    except ValueError:
        raise BadInput(f"{value!r}: the value in a scale label is 'weight' (grams) or 'price' (paisa)") from None


def _yes_no(value: str) -> str:
    v = value.strip().lower()
    if v not in ("yes", "no"):
        raise BadInput(f"{value!r}: answer yes or no")
    return v


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    read: Callable[[str], str]


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("shop.name", "", "the shop's name at the top of every receipt", _text),
    Setting("shop.bin", "", "the shop's VAT registration number (BIN), printed on every receipt", _bin),
    Setting("time_zone", DHAKA, "the time zone of the times on receipts and in 'sale list'", _zone_name),
    Setting("till.kiosk_printing", "no", "yes: the till opens Edge with --kiosk-printing, so receipts print on the "
            "default printer with no dialog", _yes_no),
    Setting("barcode.prefixes", "20-29", "EAN-13 prefixes the shop's scales print (20-29, or a few: 21,22)",
            _prefixes),
    Setting("barcode.item_digits", "5", "digits of the item code after the prefix on a scale label (4-6)", _digits),
    Setting("barcode.value", "weight", "what a scale label carries after the item code: weight (grams) or "
            "price (paisa)", _value),
    Setting("barcode.verifier", "no", "yes when scale labels carry a price/weight verifier digit before the value",
            _yes_no),
)}


def check(name: str, value: str) -> str:
    """The value as stored, or BadInput saying what is wrong."""
    setting = SETTINGS.get(name)
    if setting is None:
        raise BadInput(f"there is no setting {name!r}; see 'branchsync config show' for the list")
    return setting.read(value)


@dataclass(frozen=True)
class Settings:
    """Every setting's value: what is stored, else the default."""

    values: Mapping[str, str]

    @classmethod
    def from_meta(cls, stored: Mapping[str, str]) -> "Settings":
        values = {name: s.default for name, s in SETTINGS.items()}
        values.update({k[len(META_PREFIX):]: v for k, v in stored.items()
                       if k.startswith(META_PREFIX) and k[len(META_PREFIX):] in SETTINGS})
        return cls(values)

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    @property
    def zone(self) -> tzinfo:
        return zone(self.values["time_zone"])

    @property
    def embedded_rule(self) -> EmbeddedRule:
        return EmbeddedRule(prefixes=tuple(_prefixes(self.values["barcode.prefixes"]).split(",")),
                            item_digits=int(self.values["barcode.item_digits"]),
                            value=Value(self.values["barcode.value"]),
                            verifier=self.values["barcode.verifier"] == "yes")
