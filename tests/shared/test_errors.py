"""Error codes are part of the contract: each has an HTTP status and a row in docs/protocol.md."""

import re
from pathlib import Path

from shared.errors import HTTP_STATUS, ErrorCode

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def documented() -> dict[str, str]:
    """{code: status} from the error-code table of docs/protocol.md."""
    table = PROTOCOL.read_text(encoding="utf-8").split("## Error codes", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            codes, statuses = re.findall(r"`([a-z_]+)`", cells[0]), [s.strip() for s in cells[1].split(",")]
            rows.update(zip(codes, statuses * len(codes) if len(statuses) == 1 else statuses))
    return rows


def test_every_error_code_has_an_http_status():
    assert set(HTTP_STATUS) == set(ErrorCode)


def test_every_error_code_is_documented_with_its_http_status():
    assert documented() == {str(code): str(status) for code, status in HTTP_STATUS.items()}
