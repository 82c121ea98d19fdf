"""The scheduled task: its Task Scheduler XML (a pure function), --every, and the schtasks command lines."""

import subprocess
from pathlib import Path
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from branch_client import cli, schedule
from branch_client.errors import TaskSchedulerError

NS = {"t": schedule.TASK_NS}
START = datetime(2026, 11, 28, 9, 0)
runner = CliRunner()


def parsed(xml: str) -> ET.Element:
    # Parse the UTF-16 bytes schtasks reads (the text declares encoding="UTF-16").
    return ET.fromstring(schedule.encode_for_schtasks(xml))


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, f"{path} missing"
    return found.text


@pytest.mark.parametrize("every, expected", [
    ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)), ("90s", timedelta(seconds=90)),
    ("1h30m", timedelta(minutes=90)), (" 2M ", timedelta(minutes=2)), ("1d", timedelta(days=1)),
])
def test_every_is_parsed_from_a_number_and_a_unit(every, expected):
    assert schedule.parse_every(every) == expected


@pytest.mark.parametrize("every", ["", "15", "m", "15x", "-5m", "1.5h", "15 minutes", "30s", "32d", "0m"])
def test_a_bad_or_out_of_range_every_is_refused_with_a_message(every):
    with pytest.raises(ValueError, match="--every"):
        schedule.parse_every(every)


@pytest.mark.parametrize("value, spelled", [
    (timedelta(minutes=15), "PT15M"), (timedelta(hours=1), "PT1H"), (timedelta(seconds=90), "PT1M30S"),
    (timedelta(days=1, hours=2), "P1DT2H"), (timedelta(days=2), "P2D"),
])
def test_durations_are_written_the_way_task_scheduler_writes_them(value, spelled):
    assert schedule.iso_duration(value) == spelled


def test_the_task_xml_is_well_formed_and_carries_every_setting():
    xml = schedule.task_xml(r"C:\Program Files\branchsync\branchsync.exe", r"C:\ProgramData\branchsync",
                            schedule.parse_every("15m"), START, user=r"SHOP\cashier")
    root = parsed(xml)
    assert root.tag == f"{{{schedule.TASK_NS}}}Task" and root.get("version") == schedule.TASK_VERSION == "1.3"
    settings = {
        "t:Settings/t:StartWhenAvailable": "true",
        "t:Settings/t:MultipleInstancesPolicy": "IgnoreNew",
        "t:Settings/t:DisallowStartIfOnBatteries": "false",
        "t:Settings/t:StopIfGoingOnBatteries": "false",
        "t:Settings/t:ExecutionTimeLimit": "PT30M",
        "t:Settings/t:RestartOnFailure/t:Interval": "PT5M",
        "t:Settings/t:RestartOnFailure/t:Count": "3",
        "t:Settings/t:Enabled": "true",
        "t:Triggers/t:TimeTrigger/t:Repetition/t:Interval": "PT15M",
        "t:Triggers/t:TimeTrigger/t:StartBoundary": "2026-11-28T09:00:00",
        "t:Triggers/t:TimeTrigger/t:Enabled": "true",
        "t:Principals/t:Principal/t:UserId": r"SHOP\cashier",
        "t:Principals/t:Principal/t:LogonType": "S4U",
        "t:Actions/t:Exec/t:Command": r"C:\Program Files\branchsync\branchsync.exe",
        "t:Actions/t:Exec/t:Arguments": r"--home C:\ProgramData\branchsync sync",
    }
    for path, value in settings.items():
        assert text(root, path) == value, path
    # No Duration under Repetition: it repeats indefinitely.
    assert root.find("t:Triggers/t:TimeTrigger/t:Repetition/t:Duration", NS) is None


def test_a_home_with_spaces_is_quoted_and_xml_special_characters_are_escaped():
    xml = schedule.task_xml(r"C:\Tills & Co\branchsync.exe", r"C:\Shop Data\<branch>", timedelta(hours=1), START,
                            user="till")
    root = parsed(xml)
    assert text(root, "t:Actions/t:Exec/t:Command") == r"C:\Tills & Co\branchsync.exe"
    assert text(root, "t:Actions/t:Exec/t:Arguments") == r'--home "C:\Shop Data\<branch>" sync'
    assert text(root, "t:Triggers/t:TimeTrigger/t:Repetition/t:Interval") == "PT1H"


def test_the_system_principal_runs_as_local_system_without_a_logon_type():
    root = parsed(schedule.task_xml("branchsync.exe", r"C:\ProgramData\branchsync", timedelta(minutes=15), START,
                                    principal="system"))
    assert text(root, "t:Principals/t:Principal/t:UserId") == "S-1-5-18"
    assert root.find("t:Principals/t:Principal/t:LogonType", NS) is None


def test_the_till_task_opens_the_till_at_this_account_s_logon_on_its_desktop_and_runs_all_day():
    root = parsed(schedule.till_task_xml(r"C:\Program Files\branchsync\branchsync.exe", r"C:\Shop Data\till",
                                         user=r"SHOP\cashier"))
    assert text(root, "t:RegistrationInfo/t:URI") == r"\branchsync-till"
    assert text(root, "t:Triggers/t:LogonTrigger/t:UserId") == r"SHOP\cashier"
    assert text(root, "t:Principals/t:Principal/t:UserId") == r"SHOP\cashier"
    assert text(root, "t:Principals/t:Principal/t:LogonType") == "InteractiveToken"
    assert text(root, "t:Settings/t:ExecutionTimeLimit") == "PT0S"          # never ended by the scheduler
    assert text(root, "t:Settings/t:MultipleInstancesPolicy") == "IgnoreNew"  # a second logon opens no second till
    assert text(root, "t:Settings/t:Priority") == "5"                        # normal, not background
    assert text(root, "t:Actions/t:Exec/t:Arguments") == r'--home "C:\Shop Data\till" till'
    assert root.find("t:Triggers/t:TimeTrigger", NS) is None


def test_the_xml_file_for_schtasks_is_utf16_with_a_byte_order_mark():
    data = schedule.encode_for_schtasks(schedule.task_xml("b.exe", "h", timedelta(minutes=15), START, user="u"))
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert data.decode("utf-16").startswith('<?xml version="1.0" encoding="UTF-16"?>\r\n')


def test_a_python_install_runs_the_module_with_the_interpreter():
    root = parsed(schedule.task_xml("/usr/bin/python3", "/srv/till", timedelta(minutes=15), START, user="u",
                                    extra_args=("-m", "branch_client")))
    assert text(root, "t:Actions/t:Exec/t:Arguments") == "-m branch_client --home /srv/till sync"


def test_the_first_start_is_the_next_whole_minute():
    assert schedule.next_start(datetime(2026, 1, 1, 23, 59, 30, 5)) == datetime(2026, 1, 2, 0, 0)


def test_the_schtasks_command_lines_are_exact():
    assert subprocess.list2cmdline(schedule.create_command("t.xml")) == "schtasks /Create /TN branchsync-sync /XML t.xml /F"
    assert subprocess.list2cmdline(schedule.query_command()) == "schtasks /Query /TN branchsync-sync /XML"
    assert subprocess.list2cmdline(schedule.delete_command()) == "schtasks /Delete /TN branchsync-sync /F"


# --- the commands -----------------------------------------------------------------------------


def test_install_dry_run_prints_the_xml_and_the_schtasks_command(tmp_path):
    home = tmp_path / "till"
    result = runner.invoke(cli.app, ["--home", str(home), "schedule", "install", "--every", "1h", "--dry-run",
                                     "--xml-file", str(tmp_path / "task.xml")])
    assert result.exit_code == 0, result.output
    root = parsed(result.stdout)
    assert text(root, "t:Triggers/t:TimeTrigger/t:Repetition/t:Interval") == "PT1H"
    assert text(root, "t:Actions/t:Exec/t:Arguments").endswith(f"--home {home} sync")
    assert f"schtasks /Create /TN branchsync-sync /XML {tmp_path / 'task.xml'} /F" in result.stderr
    assert ET.fromstring((tmp_path / "task.xml").read_bytes()) is not None
    assert not home.exists()  # printing a task creates no data home


def test_install_with_a_bad_every_exits_2_with_a_clear_message(tmp_path):
    result = runner.invoke(cli.app, ["--home", str(tmp_path), "schedule", "install", "--every", "soon", "--dry-run"])
    assert result.exit_code == 2
    assert "--every 'soon' is not a duration" in result.stderr and "15m" in result.stderr


def test_show_and_remove_print_their_commands_for_both_tasks_off_windows(tmp_path):
    shown = runner.invoke(cli.app, ["schedule", "show", "--dry-run"])
    removed = runner.invoke(cli.app, ["schedule", "remove", "--dry-run"])
    assert shown.stdout.splitlines() == ["schtasks /Query /TN branchsync-sync /XML", "schtasks /Query /TN branchsync-till /XML"]
    assert removed.stdout.splitlines() == ["schtasks /Delete /TN branchsync-sync /F", "schtasks /Delete /TN branchsync-till /F"]


def test_install_dry_run_with_the_till_at_logon_writes_both_tasks(tmp_path):
    home = tmp_path / "till"
    result = runner.invoke(cli.app, ["--home", str(home), "schedule", "install", "--till-at-logon", "--dry-run",
                                     "--xml-file", str(tmp_path / "task.xml")])
    assert result.exit_code == 0, result.output
    till = ET.fromstring((tmp_path / "task-till.xml").read_bytes())
    assert text(till, "t:Actions/t:Exec/t:Arguments").endswith(f"--home {home} till")
    assert text(ET.fromstring((tmp_path / "task.xml").read_bytes()), "t:Actions/t:Exec/t:Arguments").endswith(" sync")
    assert f"schtasks /Create /TN branchsync-till /XML {tmp_path / 'task-till.xml'} /F" in result.stderr


class Schtasks:
    """Stands in for schtasks.exe at schedule.run, the one seam to it (there is no Task Scheduler off Windows):
    records each command line and the XML it was handed, and knows which tasks are registered."""

    def __init__(self, registered=(), refuse=None):
        self.registered = set(registered)
        self.refuse = refuse
        self.commands, self.xml = [], {}

    def __call__(self, command):
        self.commands.append(command)
        verb, name = command[1], command[3]
        if self.refuse:
            return subprocess.CompletedProcess(command, 1, "", self.refuse)
        if verb == "/Create":
            self.xml[name] = open(command[command.index("/XML") + 1], "rb").read()
            self.registered.add(name)
        elif name not in self.registered:
            return subprocess.CompletedProcess(command, 1, "", "ERROR: The system cannot find the file specified.")
        elif verb == "/Delete":
            self.registered.discard(name)
        return subprocess.CompletedProcess(command, 0, f"<Task>{name}</Task>\n" if verb == "/Query" else "SUCCESS", "")


@pytest.fixture
def on_windows(monkeypatch):
    def plug(fake: Schtasks) -> Schtasks:
        monkeypatch.setattr(cli, "_on_windows", lambda: True)
        monkeypatch.setattr(schedule, "run", fake)
        return fake
    return plug


def test_on_windows_install_hands_a_utf16_xml_file_to_schtasks(tmp_path, on_windows):
    fake = on_windows(Schtasks())
    result = runner.invoke(cli.app, ["--home", str(tmp_path), "schedule", "install", "--every", "15m"])
    assert result.exit_code == 0, result.output
    [command] = fake.commands
    assert command[:4] == ["schtasks", "/Create", "/TN", "branchsync-sync"] and command[-1] == "/F"
    assert text(ET.fromstring(fake.xml["branchsync-sync"]), "t:Settings/t:StartWhenAvailable") == "true"
    assert fake.registered == {"branchsync-sync"} and "installed" in result.stdout


def test_on_windows_install_with_the_till_at_logon_registers_both_tasks(tmp_path, on_windows):
    fake = on_windows(Schtasks())
    result = runner.invoke(cli.app, ["--home", str(tmp_path), "schedule", "install", "--till-at-logon"])
    assert result.exit_code == 0, result.output
    assert fake.registered == {"branchsync-sync", "branchsync-till"}
    till = ET.fromstring(fake.xml["branchsync-till"])
    assert text(till, "t:Triggers/t:LogonTrigger/t:UserId") == text(till, "t:Principals/t:Principal/t:UserId")
    assert "scheduled task branchsync-till installed: the till opens when" in result.stdout


def test_on_windows_a_refused_registration_exits_1_and_says_to_run_as_administrator(tmp_path, on_windows):
    on_windows(Schtasks(refuse="ERROR: Access is denied."))
    result = runner.invoke(cli.app, ["--home", str(tmp_path), "schedule", "install"])
    assert result.exit_code == 1
    assert "Access is denied" in result.stderr and "administrator" in result.stderr


def test_on_windows_remove_removes_the_sync_and_the_till_task(on_windows):
    fake = on_windows(Schtasks(registered={"branchsync-sync", "branchsync-till"}))
    result = runner.invoke(cli.app, ["schedule", "remove"])
    assert result.exit_code == 0, result.output
    assert fake.registered == set()
    assert "branchsync-sync removed" in result.stdout and "branchsync-till removed" in result.stdout


def test_on_windows_remove_without_a_till_task_removes_the_sync_task_alone(on_windows):
    fake = on_windows(Schtasks(registered={"branchsync-sync"}))
    result = runner.invoke(cli.app, ["schedule", "remove"])
    assert result.exit_code == 0 and fake.registered == set()
    assert ["schtasks", "/Delete", "/TN", "branchsync-till", "/F"] not in fake.commands
    assert runner.invoke(cli.app, ["schedule", "remove"]).stdout.startswith("no branchsync scheduled task")


def test_on_windows_show_prints_both_registered_tasks(on_windows):
    on_windows(Schtasks(registered={"branchsync-sync", "branchsync-till"}))
    result = runner.invoke(cli.app, ["schedule", "show"])
    assert result.exit_code == 0 and result.stdout.splitlines() == ["<Task>branchsync-sync</Task>",
                                                                    "<Task>branchsync-till</Task>"]


def test_a_schtasks_that_cannot_be_run_is_an_error_asking_whether_this_is_windows():
    with pytest.raises(TaskSchedulerError, match="cannot run schtasks .*is this Windows"):
        schedule.run(["branchsync-no-such-schtasks", "/Query"])


# --- against Microsoft's Task Scheduler schema --------------------------------------------------

SCHEMA_FILE = Path(__file__).parent / "data" / "taskschedulerschema-subset.xsd"


@pytest.fixture(scope="module")
def task_schema():
    import xmlschema

    return xmlschema.XMLSchema(str(SCHEMA_FILE))


@pytest.mark.parametrize("principal, user", [(schedule.PRINCIPAL_USER, r"SHOP\cashier"),
                                             (schedule.PRINCIPAL_SYSTEM, None)])
@pytest.mark.parametrize("every", ["1m", "15m", "1h30m", "31d"])
def test_the_task_xml_validates_against_the_task_scheduler_schema(task_schema, principal, user, every):
    xml = schedule.task_xml(r"C:\Program Files\branchsync\branchsync.exe", r"C:\Shop Data\till 1",
                            schedule.parse_every(every), START, principal=principal, user=user,
                            extra_args=("-m", "branch_client"))
    errors = [str(e.reason or e) for e in task_schema.iter_errors(schedule.encode_for_schtasks(xml))]
    assert errors == []


@pytest.mark.parametrize("extra", [(), ("-m", "branch_client")])
def test_the_till_task_xml_validates_against_the_task_scheduler_schema(task_schema, extra):
    xml = schedule.till_task_xml(r"C:\Program Files\branchsync\branchsync.exe", r"C:\Shop Data\till 1",
                                 user=r"SHOP\cashier", extra_args=extra)
    assert [str(e.reason or e) for e in task_schema.iter_errors(schedule.encode_for_schtasks(xml))] == []


def test_the_schema_check_itself_refuses_a_logon_trigger_whose_user_comes_before_enabled(task_schema):
    root = ET.fromstring(schedule.encode_for_schtasks(schedule.till_task_xml("b.exe", "h", user="u")))
    trigger = root.find("t:Triggers/t:LogonTrigger", NS)
    user = trigger.find("t:UserId", NS)
    trigger.remove(user)
    trigger.insert(0, user)
    assert not task_schema.is_valid(ET.tostring(root))


def test_the_trigger_children_come_in_the_schema_sequence(task_schema):
    trigger = parsed(schedule.task_xml("b.exe", "h", timedelta(minutes=15), START, user="u")).find(
        "t:Triggers/t:TimeTrigger", NS)
    order = [child.tag.split("}")[1] for child in trigger]
    sequence = ["Enabled", "StartBoundary", "EndBoundary", "Repetition", "ExecutionTimeLimit", "RandomDelay"]
    assert order == sorted(order, key=sequence.index)


def test_the_schema_check_itself_refuses_a_repetition_before_the_start_boundary(task_schema):
    # The order Task Scheduler refuses must fail here too, or the test above proves nothing.
    xml = schedule.task_xml("b.exe", "h", timedelta(minutes=15), START, user="u")
    root = ET.fromstring(xml.replace('encoding="UTF-16"', 'encoding="UTF-8"').encode("utf-8"))
    trigger = root.find("t:Triggers/t:TimeTrigger", NS)
    repetition = trigger.find("t:Repetition", NS)
    trigger.remove(repetition)
    trigger.insert(0, repetition)
    assert not task_schema.is_valid(ET.tostring(root))
