import sys
from pathlib import Path

import platformdirs

from branch_client.paths import data_home


def test_the_home_option_wins_over_the_environment(tmp_path):
    assert data_home(tmp_path / "opt", env={"BRANCHSYNC_HOME": str(tmp_path / "env")}) == tmp_path / "opt"


def test_the_environment_variable_wins_over_the_platform_default(tmp_path):
    assert data_home(None, env={"BRANCHSYNC_HOME": str(tmp_path / "env")}, platform="win32") == tmp_path / "env"


def test_windows_keeps_data_under_programdata():
    home = data_home(None, env={"PROGRAMDATA": r"D:\ProgramData"}, platform="win32")
    assert str(home) == r"D:\ProgramData\branchsync"


def test_elsewhere_the_user_data_directory_is_used_never_the_executables_folder():
    home = data_home(None, env={}, platform="linux")
    assert home == Path(platformdirs.user_data_dir("branchsync", appauthor=False))
    assert home != Path(sys.executable).parent and home.name == "branchsync"


def test_in_a_one_file_build_the_default_home_is_neither_in_the_unpack_folder_nor_beside_the_exe(monkeypatch, tmp_path):
    unpacked, installed = tmp_path / "_MEI12345", tmp_path / "Program Files" / "branchsync"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(unpacked), raising=False)
    monkeypatch.setattr(sys, "executable", str(installed / "branchsync.exe"))
    for platform, env in (("linux", {}), ("win32", {"PROGRAMDATA": r"C:\ProgramData"})):
        home = data_home(None, env=env, platform=platform)
        for folder in (unpacked, installed):
            assert not Path(home).is_relative_to(folder), (platform, home)
