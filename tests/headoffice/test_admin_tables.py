"""Every admin table rendered on an 80-column console with long, realistic values."""

import io
from datetime import datetime, timezone

from rich.cells import cell_len
from rich.console import Console

from headoffice.admin_tables import (
    audit_table, branches_table, dead_letters_table, people_table, price_differences_table, report_table,
)
from shared.access import AuditEntry, PersonInfo
from shared.models import BranchInfo, DeadLetterInfo, PriceDifference, ReportTable

WIDTH = 80
AT = datetime(2026, 11, 28, 6, 15, 42, tzinfo=timezone.utc)
LONG_BRANCH = "chattogram-agrabad-commercial-area-east1"  # 40 characters, the longest a name may be
BANGLA = "রূপচাঁদা সয়াবিন তেল পাঁচ লিটার বোতল (পরিবার প্যাক) Rupchanda soybean oil"
REASON = ("the frame's MAC does not match its body: the message was changed after the branch signed it, "
          "or it was signed with a secret this branch no longer has; applicationDeadLetterReason=bad_signature")


def render(table) -> str:
    console = Console(width=WIDTH, record=True, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.export_text()


def columns(text: str) -> list[str]:
    """Each body column's text, the lines of its cells joined and spaces dropped (so a folded or
    wrapped value reads whole again). Body rows are the lines between the header rule and the end."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡")) + 1
    body = [line for line in lines[start:] if line.startswith("│")]
    cells = [line.strip("│").split("│") for line in body]
    return ["".join(row[c] for row in cells).replace(" ", "") for c in range(len(cells[0]))]


def assert_fits_and_whole(text: str, rows: list[list[str]]):
    assert "…" not in text, text
    # The console crops what does not fit, so a table too wide shows as a line without its right edge.
    table = [line.rstrip() for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert all(cell_len(line) <= WIDTH and line[-1] in "┓┃┩│┘" for line in table), text
    joined = columns(text)
    for row in rows:
        for c, value in enumerate(row):
            assert value.replace(" ", "") in joined[c], f"{value!r} is not whole in column {c}:\n{text}"


def branch(name, **fields) -> BranchInfo:
    return BranchInfo(branch=name, created_at=AT, enrolled=True, applied_through=1_234_567, sales_applied=1_234_567,
                      total_paisa=98_765_432_10, last_pull=AT, last_push=AT, **fields)


def test_the_branches_table_fits_80_columns_with_long_names_and_errors_whole():
    listing = [branch(LONG_BRANCH, last_error=REASON, rotation_pending=True),
               branch("dhaka-gulshan", revoked_at=AT), branch("sylhet_zindabazar-2")]
    text = render(branches_table(listing))
    assert_fits_and_whole(text, [
        [LONG_BRANCH, "rotation pending", "1234567", "1234567", "98765432.10",
         "pull 2026-11-28 06:15:42 push 2026-11-28 06:15:42", REASON],
        ["dhaka-gulshan", "revoked 2026-11-28 06:15:42"],
        ["sylhet_zindabazar-2", "enrolled"],
    ])


def test_the_dead_letters_table_fits_80_columns_with_its_reason_and_id_whole():
    letter = DeadLetterInfo(id="20261128-061542000123-9f8e7d6c", received_at=AT, branch=LONG_BRANCH,
                            code="bad_signature", reason=REASON, size=65_536, truncated=True, replays=12)
    text = render(dead_letters_table([letter, letter.model_copy(update={"branch": None, "code": "malformed_message"})]))
    assert_fits_and_whole(text, [
        [letter.id, "2026-11-28 06:15:42", LONG_BRANCH, "bad_signature", REASON, "65536 (truncated)", "12"],
        [letter.id, "2026-11-28 06:15:42", "?", "malformed_message"],
    ])


def test_the_price_differences_table_fits_80_columns_with_bangla_names_whole():
    sku = "RUPCHANDA-SOYBEAN-OIL-5L-FAMILY-PACK-2026"
    diff = PriceDifference(branch=LONG_BRANCH, seq=1_234_567, sale_id="ab" * 16, recorded_at=AT, line=12, sku=sku,
                           name=BANGLA, qty="12.25", sold_price=98_500, list_price=99_000, current_price=105_075,
                           status="price_differs", difference=-96_670_00)
    gone = diff.model_copy(update={"status": "deleted", "current_price": None, "difference": None})
    text = render(price_differences_table([diff, gone]))
    assert_fits_and_whole(text, [
        [LONG_BRANCH + "1234567/12" + "2026-11-28 06:15", sku + BANGLA, "12.25", "price differs", "985.00", "1050.75",
         "-96670.00"],
        [LONG_BRANCH + "1234567/12" + "2026-11-28 06:15", sku + BANGLA, "12.25", "deleted", "985.00", "-", "-"],
    ])


def test_the_people_table_fits_80_columns_with_every_role_and_a_revocation_whole():
    name = "rahima-khatun-accounts-chattogram-office"  # 40 characters, the longest a name may be
    everyone = PersonInfo(name=name, roles=["reports", "catalog", "branches", "deadletters", "admin"], created_at=AT,
                          created_by="admin-key", revoked_at=AT, revoked_by=name)
    text = render(people_table([everyone, everyone.model_copy(update={"revoked_at": None, "roles": ["reports"]})]))
    assert_fits_and_whole(text, [
        [name, "reports, catalog, branches, deadletters, admin", "2026-11-28 06:15:42 by admin-key",
         f"revoked 2026-11-28 06:15:42 by {name}"],
        [name, "reports", "2026-11-28 06:15:42 by admin-key", "active"],
    ])


def test_the_audit_table_fits_80_columns_with_the_route_what_and_result_whole():
    who = "rahima-khatun-accounts-chattogram-office"
    what = f"name={LONG_BRANCH} products=[500] reason={REASON[:57]}..."
    entry = AuditEntry(at=AT, who=who, via="credential", role="deadletters", method="POST",
                       route="manage/deadletters/{id}/replay", what=what, status=403, result="forbidden")
    text = render(audit_table([entry, entry.model_copy(update={"what": "", "status": 200, "result": "ok"})]))
    assert_fits_and_whole(text, [
        ["2026-11-28 06:15:42", who + "(credential)", "POST manage/deadletters/{id}/replay" + what,
         "403 forbidden" + "needs deadletters"],
        ["2026-11-28 06:15:42", who + "(credential)", "POST manage/deadletters/{id}/replay", "200 ok"],
    ])


def test_a_report_table_fits_80_columns_and_shows_branch_text_as_typed_not_as_markup():
    name = "[red]" + BANGLA
    report = ReportTable(report="sales", first="2026-11-01", last="2026-11-30", by="product", zone="Asia/Dhaka",
                         columns=["sku", "name", "qty", "net", "vat", "complete"],
                         kinds=["text", "text", "qty", "paisa", "paisa", "text"],
                         rows=[["RUPCHANDA-SOYBEAN-OIL-5L-FAMILY-PACK-2026", name, "1234.5", 123456789012, 5878878, "no"]],
                         complete=False, branches=[])
    text = render(report_table(report))
    assert_fits_and_whole(text, [["RUPCHANDA-SOYBEAN-OIL-5L-FAMILY-PACK-2026", name, "1234.5", "1234567890.12",
                                  "58788.78", "no"]])
    assert "INCOMPLETE" in text


def test_a_report_table_of_many_columns_stacks_them_in_pairs_and_fits_80_columns():
    columns = ["day", "sales", "gross", "discounts", "refunds", "voids", "net", "vat", "complete", "waiting_on"]
    kinds = ["date", "int", "paisa", "paisa", "paisa", "paisa", "paisa", "paisa", "text", "text"]
    row = ["2026-11-28", 12_345, 99_999_999_999, 1_234_567_89, 9_876_543_21, 5_555_555_55, 88_888_888_888, 7_777_777_77,
           "no", LONG_BRANCH]
    report = ReportTable(report="sales", first="2026-11-28", last="2026-11-28", by="day", zone="Asia/Dhaka",
                         columns=columns, kinds=kinds, rows=[row], complete=False, branches=[])
    text = render(report_table(report))
    assert_fits_and_whole(text, [["2026-11-28" + "12345", "999999999.99" + "1234567.89", "9876543.21" + "5555555.55",
                                  "888888888.88" + "7777777.77", "no" + LONG_BRANCH]])
