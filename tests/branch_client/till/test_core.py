"""The till's pure decisions: browser command, request checks, cart parsing."""

from dataclasses import replace
from decimal import Decimal

import pytest

from branch_client import status as branch_status
from branch_client.errors import BadSaleInput
from branch_client.till import core

URL = "http://127.0.0.1:8750/"
EDGE_X86 = r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"
WIN_ENV = {"ProgramFiles(x86)": r"C:\Program Files (x86)", "ProgramFiles": r"C:\Program Files",
           "LOCALAPPDATA": r"C:\Users\cashier\AppData\Local"}


def test_edge_under_program_files_x86_opens_the_till_in_app_mode():
    cmd = core.browser_command(URL, windows=True, env=WIN_ENV, exists=lambda p: p == EDGE_X86, which=lambda n: None)
    assert cmd == [EDGE_X86, f"--app={URL}"]


def test_edge_installed_for_the_user_only_is_found_in_local_app_data():
    user_edge = r"C:\Users\cashier\AppData\Local\Microsoft\Edge\Application\msedge.exe"
    cmd = core.browser_command(URL, windows=True, env=WIN_ENV, exists=lambda p: p == user_edge, which=lambda n: None)
    assert cmd == [user_edge, f"--app={URL}"]


def test_without_edge_there_is_no_command_so_the_default_browser_opens():
    assert core.browser_command(URL, windows=True, env=WIN_ENV, exists=lambda p: False, which=lambda n: None) is None
    assert core.browser_command(URL, windows=False, env={}, exists=lambda p: True, which=lambda n: None) is None


def test_edge_on_path_is_used_elsewhere():
    cmd = core.browser_command(URL, windows=False, env={}, exists=lambda p: False,
                               which=lambda n: "/usr/bin/microsoft-edge" if n == "microsoft-edge" else None)
    assert cmd == ["/usr/bin/microsoft-edge", f"--app={URL}"]


@pytest.mark.parametrize("host", [None, "", "localhost:8750", "127.0.0.1", "127.0.0.1:8751", "evil.example:8750",
                                  "127.0.0.1:8750.evil.example", "[::1]:8750"])
def test_only_the_tills_own_host_is_allowed(host):
    assert not core.host_allowed(host, 8750)
    assert core.host_allowed("127.0.0.1:8750", 8750)


def test_the_token_must_match_exactly():
    assert core.token_ok("abc", "abc")
    assert not core.token_ok(None, "abc") and not core.token_ok("abd", "abc") and not core.token_ok("", "abc")


def test_a_cart_becomes_items_with_exact_quantities():
    items = core.cart_items([{"sku": "ATTA", "qty": "1.250"}, {"sku": "SOAP", "qty": "2"}])
    assert [(i.sku, i.qty) for i in items] == [("ATTA", Decimal("1.25")), ("SOAP", Decimal(2))]


@pytest.mark.parametrize("lines", [None, [], "SOAP=1", [{"sku": "SOAP"}], [{"sku": "SOAP", "qty": 1}],
                                   [{"sku": "SOAP", "qty": "0"}], [{"sku": "SOAP", "qty": "1e3"}]])
def test_a_bad_cart_is_refused_with_a_message(lines):
    with pytest.raises(BadSaleInput):
        core.cart_items(lines)


def test_the_client_key_and_the_void_reason_are_checked():
    assert core.client_key("a" * 32) == "a" * 32
    for bad in (None, "", "A" * 32, "a" * 31, 5):
        with pytest.raises(BadSaleInput):
            core.client_key(bad)
    assert core.void_reason("  wrong   item ") == "wrong item"
    with pytest.raises(BadSaleInput, match="reason"):
        core.void_reason(" ")


def test_online_means_the_last_sync_reached_the_cloud(enrolled):
    never = branch_status.read(enrolled)
    ok = replace(never, last_sync_ok="2026-01-01T00:00:00+00:00", pending=2)
    assert core.status_view(ok, syncing=False, sync_note=None)["online"] is True
    assert core.status_view(replace(ok, last_error="cloud unreachable"), syncing=False, sync_note=None)["online"] is False
    assert core.status_view(never, syncing=False, sync_note=None)["online"] is False
    assert "http" not in str(core.status_view(ok, syncing=False, sync_note=None))  # not the cloud's address


def test_kiosk_printing_adds_chromiums_flag_before_the_app_address():
    cmd = core.browser_command(URL, windows=True, env=WIN_ENV, exists=lambda p: p == EDGE_X86, which=lambda n: None,
                               kiosk_printing=True)
    assert cmd == [EDGE_X86, "--kiosk-printing", f"--app={URL}"]
