"""The one-file executable's leftovers (branch_client.onefile): which unpack folders are stale.

The binding of the child to the bootloader is proven on the built executable (tests/exe);
here, the choice of folders to remove, with real folders and real (and ended) processes.
"""

import json
import subprocess
import sys

from branch_client import onefile, processes


def ended_process() -> processes.ProcessId:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    found = processes.identify(proc.pid)
    proc.wait()
    return found


def bundle(temp, name, bootloader, child):
    folder = temp / name
    folder.mkdir()
    (folder / onefile.MARKER).write_text(json.dumps({"bootloader": bootloader.as_dict(), "child": child.as_dict()}))
    return folder


def test_only_our_folders_whose_bootloader_and_child_are_both_gone_are_stale(tmp_path):
    dead, alive = ended_process(), processes.identify()
    stale = bundle(tmp_path, "_MEI111", dead, dead)
    bundle(tmp_path, "_MEI222", alive, dead)     # a bootloader still waiting: it deletes its own folder
    bundle(tmp_path, "_MEI333", dead, alive)     # an orphan still running: the sync lock deals with it
    (tmp_path / "_MEI444").mkdir()               # another PyInstaller program's, or still unpacking
    (tmp_path / "other").mkdir()
    assert onefile.stale_bundles(tmp_path, own=None) == [stale]


def test_our_own_folder_is_never_stale(tmp_path):
    dead = ended_process()
    own = bundle(tmp_path, "_MEI555", dead, dead)
    assert onefile.stale_bundles(tmp_path, own=own) == []


def test_a_damaged_marker_leaves_the_folder_alone(tmp_path):
    (tmp_path / "_MEI666").mkdir()
    (tmp_path / "_MEI666" / onefile.MARKER).write_text("{not json")
    assert onefile.stale_bundles(tmp_path, own=None) == []


def test_the_source_program_is_not_a_one_file_child_and_binds_nothing():
    assert onefile.bundle_dir() is None
    onefile.keep_with_bootloader()  # a no-op outside the frozen executable
