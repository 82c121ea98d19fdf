"""Cashiers' PIN lock: the rule (branch_client.cashiers), kept in a real SQLite store across a
restart, and the manager's `branchsync cashier list` / `unlock` on the command line."""

from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from branch_client import cli
from branch_client.cashiers import LOCKED_FOR, MAX_WRONG_PINS, CashierLocked, Tries
from branch_client.store import Store

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
runner = CliRunner()


def test_the_fifth_wrong_pin_in_a_row_locks_the_name_for_five_minutes_and_a_lock_run_out_counts_again():
    tries = Tries()
    for n in range(1, MAX_WRONG_PINS):
        tries = tries.after_wrong_pin(T0)
        assert (tries.wrong, tries.left, tries.locked(T0)) == (n, MAX_WRONG_PINS - n, False)
    tries = tries.after_wrong_pin(T0)
    assert tries.locked(T0) and tries.locked(T0 + LOCKED_FOR - timedelta(seconds=1))
    assert tries.locked_until == T0 + timedelta(minutes=5) and not tries.locked(T0 + LOCKED_FOR)
    again = tries.after_wrong_pin(T0 + LOCKED_FOR)
    assert (again.wrong, again.locked(T0 + LOCKED_FOR)) == (1, False)


def _wrong(store, name, times, now=T0):
    for _ in range(times):
        assert store.sign_in(name, "0000", now) is None


def test_a_locked_name_refuses_even_the_right_pin_until_it_unlocks_and_a_restart_keeps_the_lock(tmp_path):
    with Store(tmp_path) as store:
        store.add_cashier("Rahim", "4821")
        _wrong(store, "rahim", MAX_WRONG_PINS)
        with pytest.raises(CashierLocked, match="Rahim is locked") as locked:
            store.sign_in("Rahim", "4821", T0 + timedelta(minutes=4))
        assert locked.value.until == T0 + LOCKED_FOR
    with Store(tmp_path) as store:  # the till restarted: still locked
        with pytest.raises(CashierLocked):
            store.sign_in("Rahim", "4821", T0 + timedelta(minutes=4, seconds=59))
        assert store.sign_in("Rahim", "4821", T0 + LOCKED_FOR) == "Rahim"
        assert store.sign_in_tries("Rahim") == Tries()  # a right PIN forgets the wrong ones


def test_a_name_nobody_has_is_locked_the_same_way_so_the_answer_never_tells_which_names_exist(tmp_path):
    with Store(tmp_path) as store:
        store.add_cashier("Rahim", "4821")
        _wrong(store, "Rahim", MAX_WRONG_PINS)
        _wrong(store, "Nobody", MAX_WRONG_PINS)
        for name in ("Rahim", "Nobody"):
            with pytest.raises(CashierLocked, match=f"{name} is locked after {MAX_WRONG_PINS} wrong PINs"):
                store.sign_in(name, "0000", T0)
        _wrong(store, "Karim", 2)
        assert store.sign_in_tries("karim").left == MAX_WRONG_PINS - 2


def test_the_manager_sees_a_locked_cashier_in_the_list_and_unlocks_them_at_once(tmp_path):
    now = datetime.now(timezone.utc)
    with Store(tmp_path) as store:
        store.add_cashier("Rahim", "4821")
        store.add_cashier("Karim", "1234")
        _wrong(store, "Rahim", MAX_WRONG_PINS, now)
    listed = runner.invoke(cli.app, ["--home", str(tmp_path), "cashier", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0] == "Karim"
    assert lines[1].startswith("Rahim: locked after too many wrong PINs until ") and "(Asia/Dhaka)" in lines[1]
    assert "branchsync cashier unlock Rahim" in lines[1]
    unlocked = runner.invoke(cli.app, ["--home", str(tmp_path), "cashier", "unlock", "rahim"])
    assert unlocked.exit_code == 0 and "cashier rahim unlocked" in unlocked.stdout
    with Store(tmp_path) as store:
        assert store.sign_in("Rahim", "4821") == "Rahim"
    again = runner.invoke(cli.app, ["--home", str(tmp_path), "cashier", "unlock", "Rahim"])
    assert again.exit_code == 0 and "was not locked" in again.stdout
    nobody = runner.invoke(cli.app, ["--home", str(tmp_path), "cashier", "unlock", "Nobody"])
    assert nobody.exit_code == 2 and "there is no cashier Nobody" in nobody.stderr
