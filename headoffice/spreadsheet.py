"""CSV cells that a spreadsheet opens as text, never as a formula (no I/O).

Text a branch supplied (product names on sale lines, SKUs) ends up in head office's CSV
exports. Excel, LibreOffice and Google Sheets evaluate a cell that starts with `=`, `+`,
`-` or `@` (and treat a leading tab or carriage return the same way), so such a cell is
prefixed with a single quote, as the OWASP advice on CSV injection says. Numbers are
written as numbers: only text is ever changed.
"""

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` unchanged unless it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose every text cell goes through `safe_cell`."""

    def __init__(self, out, **options):
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(v) for v in row])
