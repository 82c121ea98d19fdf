"""The data home's Windows access list: the icacls command lines and the judgement of what icacls reports.

icacls and whoami cannot run here; the command lines are checked exactly, and the judging
functions get outputs in the formats icacls and whoami write (an `icacls /save` file is
UTF-16 text: the object's name, then its access list in SDDL). The runner that would start
them is replaced by a recorder at its seam (`run=`); on Windows the CI workflow runs them for real.
"""

import subprocess
import sys

import pytest

from branch_client import permissions as perms

TILL = "S-1-5-21-3623811015-3361044348-30300820-1013"
HOME = r"C:\ProgramData\branchsync"

SECURED = f"D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;{TILL})"
# A folder freshly made under %PROGRAMDATA%: everything inherited (ID), Users may read.
FRESH = ("D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIIOID;GA;;;CO)(A;OICIID;0x1200a9;;;BU)"
         "(A;CIID;DCLCRPCR;;;BU)")


def saved_file(sddl: str, name: str = "branchsync") -> bytes:
    return f"{name}\r\n{sddl}\r\n".encode("utf-16-le")


def test_the_grant_command_cuts_inheritance_and_names_built_in_accounts_by_sid():
    assert perms.grant_command(HOME, TILL) == [
        "icacls", HOME, "/inheritance:r",
        "/grant:r", "*S-1-5-18:(OI)(CI)F",
        "/grant:r", "*S-1-5-32-544:(OI)(CI)F",
        "/grant:r", f"*{TILL}:(OI)(CI)M",
        "/Q"]


def test_what_is_already_inside_is_reset_to_inherit_from_the_home():
    command = perms.reset_children_command(HOME)
    assert command == ["icacls", HOME + "\\*", "/reset", "/T", "/C", "/Q"]


def test_the_account_and_its_sid_are_read_from_whoami_csv():
    assert perms.parse_whoami(f'"shop-pc\\cashier","{TILL}"\r\n') == ("shop-pc\\cashier", TILL)
    with pytest.raises(ValueError, match="whoami"):
        perms.parse_whoami("ERROR: Access denied")


def test_the_access_list_is_read_from_an_icacls_save_file_with_or_without_a_byte_order_mark():
    assert perms.parse_saved_acl(saved_file(SECURED)) == SECURED
    assert perms.parse_saved_acl(b"\xff\xfe" + saved_file(SECURED)) == SECURED
    with pytest.raises(ValueError):
        perms.parse_saved_acl("branchsync\r\n".encode("utf-16-le"))


def test_the_access_list_set_at_enrollment_passes():
    assert perms.judge_acl(SECURED, TILL) == []


def test_the_same_list_spelled_with_full_sids_and_letters_passes():
    spelled = f"D:PAI(A;OICI;FA;;;S-1-5-18)(A;OICI;FA;;;S-1-5-32-544)(A;OICI;FA;;;{TILL})"
    assert perms.judge_acl(spelled, TILL) == []


def test_a_folder_that_still_inherits_from_programdata_fails_because_every_user_can_read_it():
    problems = perms.judge_acl(FRESH, TILL)
    assert any("inherits" in p for p in problems)
    assert any("S-1-5-32-545 can read it" in p for p in problems)  # BUILTIN\Users
    assert any("this account" in p for p in problems)               # the till's account has no entry


def test_a_till_account_that_can_only_read_fails():
    read_only = f"D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;{TILL})"
    assert perms.judge_acl(read_only, TILL) == [f"this account ({TILL}) cannot change it and everything in it"]


def test_an_entry_that_is_not_inherited_by_the_files_below_fails():
    folder_only = f"D:PAI(A;;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;{TILL})"
    assert perms.judge_acl(folder_only, TILL) == [f"SYSTEM ({perms.SYSTEM_SID}) cannot change it and everything in it"]


def test_everyone_or_another_user_with_read_access_fails():
    other = SECURED + "(A;OICI;FR;;;WD)(A;OICI;0x1301bf;;;S-1-5-21-1-2-3-1014)"
    problems = perms.judge_acl(other, TILL)
    assert "S-1-1-0 can read it" in problems and "S-1-5-21-1-2-3-1014 can read it" in problems


class Recorder:
    """Stands in for subprocess.run at the seam; answers whoami and icacls like Windows does."""

    def __init__(self, sddl: str = SECURED, icacls_rc: int = 0):
        self.commands: list[list[str]] = []
        self.sddl, self.icacls_rc = sddl, icacls_rc

    def __call__(self, command):
        self.commands.append(command)
        if command[0] == "whoami":
            return subprocess.CompletedProcess(command, 0, f'"shop-pc\\cashier","{TILL}"\r\n', "")
        if "/save" in command:
            with open(command[command.index("/save") + 1], "wb") as f:
                f.write(saved_file(self.sddl))
        return subprocess.CompletedProcess(command, self.icacls_rc, "",
                                           "Access is denied." if self.icacls_rc else "")


def test_securing_the_home_runs_whoami_then_the_grant_then_the_reset_of_existing_files(tmp_path):
    (tmp_path / "branchsync.db").write_bytes(b"")
    run = Recorder()
    assert perms.secure_home(tmp_path, run=run, platform="win32") is None
    assert run.commands == [perms.whoami_command(), perms.grant_command(str(tmp_path), TILL),
                            perms.reset_children_command(str(tmp_path))]


def test_a_refused_grant_is_reported_in_words_never_raised(tmp_path):
    assert "Access is denied" in perms.secure_home(tmp_path, run=Recorder(icacls_rc=5), platform="win32")


def test_nothing_is_run_off_windows(tmp_path):
    run = Recorder()
    assert perms.secure_home(tmp_path, run=run, platform="linux") is None
    assert perms.inspect_home(tmp_path, run=run, platform="linux") == {"applies": False}
    assert run.commands == []


def test_inspecting_the_home_reads_the_saved_access_list(tmp_path):
    facts = perms.inspect_home(tmp_path, run=Recorder(FRESH), platform="win32")
    assert facts["sid"] == TILL and facts["sddl"] == FRESH and facts["problem"] is None


@pytest.mark.skipif(sys.platform != "win32", reason="runs icacls and whoami for real (the Windows workflow)")
def test_on_windows_a_secured_folder_passes_its_own_judgement(tmp_path):  # pragma: no cover
    home = tmp_path / "branchsync"
    home.mkdir()
    (home / "branchsync.db").write_bytes(b"")
    before = perms.inspect_home(home)
    assert before["problem"] is None and perms.judge_acl(before["sddl"], before["sid"])  # inherits from TEMP
    assert perms.secure_home(home) is None
    after = perms.inspect_home(home)
    assert after["problem"] is None and perms.judge_acl(after["sddl"], after["sid"]) == []
    (home / "branchsync.db").write_bytes(b"still writable by this account")
