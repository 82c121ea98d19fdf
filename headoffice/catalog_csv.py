"""Reading a head-office catalog CSV into validated products (no I/O).

Columns: sku, name, price (taka, up to 2 decimals); optional barcode, unit,
vat_rate (percent), active (true/false, yes/no, 1/0). UTF-8, with or without BOM.
Every bad row is reported with its line number; a file with any bad row imports nothing.
"""

import csv
import io

from pydantic import ValidationError

from shared.models import Product
from shared.money import parse_taka

REQUIRED = ("sku", "name", "price")
OPTIONAL = ("barcode", "unit", "vat_rate", "active")
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}


class CatalogCsvError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_catalog_csv(text: str) -> list[Product]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CatalogCsvError([f"the header row lacks column(s) {', '.join(missing)}; expected at least sku,name,price"])
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    if unknown:
        raise CatalogCsvError([f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(REQUIRED + OPTIONAL)}"])
    reader.fieldnames = header
    products: list[Product] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        try:
            product = _product(row)
        except (ValueError, ValidationError, ArithmeticError) as exc:  # a row never stops the file being checked
            problems.append(f"line {line}: {_reason(exc)}")
            continue
        if product.sku in seen:
            problems.append(f"line {line}: SKU {product.sku} already appears on line {seen[product.sku]}")
            continue
        seen[product.sku] = line
        products.append(product)
    if problems:
        raise CatalogCsvError(problems)
    if not products:
        raise CatalogCsvError(["the file has a header but no products"])
    return products


def _product(row: dict) -> Product:
    if None in row:
        raise ValueError("the row has more fields than the header")
    cells = {k: (v or "").strip() for k, v in row.items()}
    fields: dict = {"sku": cells["sku"], "name": cells["name"], "price": parse_taka(cells["price"])}
    for name in ("barcode", "unit", "vat_rate"):
        if cells.get(name):
            fields[name] = cells[name]
    if cells.get("active"):
        flag = cells["active"].lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError(f"active must be true or false, not {cells['active']!r}")
        fields["active"] = flag in _TRUE
    return Product(**fields)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {err.get('msg')}"
    return str(exc)
