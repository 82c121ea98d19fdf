"""Text output under code pages that cannot encode Bangla (branch_client.output)."""

import io
import os
import subprocess
import sys

from branch_client.output import make_text_safe, plan

NAME = "মসুর ডাল"


def test_a_pipe_in_a_legacy_encoding_is_switched_to_utf8():
    assert plan("cp1252", is_terminal=False) == {"encoding": "utf-8", "errors": "strict"}
    assert plan("ISO-8859-1", is_terminal=False)["encoding"] == "utf-8"


def test_a_terminal_keeps_its_encoding_but_replaces_what_it_cannot_show():
    assert plan("cp1252", is_terminal=True) == {"errors": "replace"}


def test_a_utf8_stream_is_left_alone_whatever_its_spelling():
    assert plan("utf-8", False) is None and plan("UTF8", True) is None and plan("utf_8", False) is None


def test_an_unknown_encoding_name_is_treated_as_not_utf8():
    assert plan("no-such-codec", False) == {"encoding": "utf-8", "errors": "strict"}


def test_a_latin1_pipe_stream_writes_bangla_as_utf8_bytes_after_the_fix():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="latin-1")
    make_text_safe([stream])
    stream.write(NAME)
    stream.flush()
    assert raw.getvalue().decode("utf-8") == NAME


def test_the_cli_prints_bangla_to_a_pipe_whose_encoding_is_latin1(tmp_path):
    # The console script's own process, its stdout a pipe forced to latin-1 like a cp1252 pipe on Windows.
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "PYTHONUTF8": "0", "BRANCHSYNC_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "import sys; from branch_client.cli import main; "
                           f"sys.argv = ['branchsync', 'catalog', 'search', {NAME!r}]; main()"],
                          env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    assert f"no product matches {NAME!r}" in proc.stdout.decode("utf-8")
