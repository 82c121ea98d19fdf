"""The BUILT executable prints Bangla to a pipe under a locale that cannot encode it.

A till's scheduled task and support scripts read the program through a pipe, and the PC's
code page is rarely UTF-8. The frozen program ignores PYTHONUTF8 and PYTHONIOENCODING,
so only the UTF-8 mode compiled into the executable (packaging/exe/branchsync.spec)
decides. On Windows the runner's ANSI code page (cp1252) is the legacy encoding; on Linux
an ISO-8859-1 locale stands in for it (built with localedef into a temporary folder, found
through LOCPATH): like cp1252 it has no Bangla.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.models import CatalogEntry, CatalogPage, Product

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NAME = "মসুর ডাল"
LATIN1 = "en_US.ISO-8859-1"


@pytest.fixture(scope="module")
def latin1_locale(tmp_path_factory) -> dict:
    """Environment variables that select an ISO-8859-1 locale for the child process."""
    if os.name == "nt":  # pragma: no cover - the Windows runner: its ANSI code page is the legacy encoding
        import ctypes

        if ctypes.windll.kernel32.GetACP() == 65001:
            pytest.skip("this Windows uses UTF-8 as its ANSI code page: nothing to prove here")
        return {}
    localedef = shutil.which("localedef")
    if localedef is None:
        pytest.skip("localedef is not installed: cannot build an ISO-8859-1 locale")
    folder = tmp_path_factory.mktemp("locales")
    proc = subprocess.run([localedef, "-i", "en_US", "-f", "ISO-8859-1", str(folder / LATIN1)],
                          capture_output=True, text=True)
    if not (folder / LATIN1 / "LC_CTYPE").exists():
        pytest.skip(f"localedef could not build {LATIN1}: {proc.stderr.strip()[:200]}")
    return {"LOCPATH": str(folder), "LC_ALL": LATIN1, "LANG": LATIN1}


@pytest.fixture
def home_with_bangla_product(tmp_path) -> Path:
    from branch_client.store import Store

    home = tmp_path / "till"
    with Store(home) as store:
        page = CatalogPage(entries=[CatalogEntry(version=1, sku="DAL-1",
                                                 product=Product(sku="DAL-1", name=NAME, price=14050, unit="kg"))],
                           next_cursor=1, more=False)
        store.apply_catalog_page(page, 0)
    return home


def test_the_executable_prints_a_bangla_product_name_to_a_pipe_under_an_iso_8859_1_locale(
        exe, latin1_locale, home_with_bangla_product):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHON")) and k != "LANG"}
    # Set on purpose: the frozen program must not depend on them (it ignores them).
    env.update(latin1_locale, PYTHONUTF8="0", PYTHONIOENCODING="latin-1")
    proc = subprocess.run([str(exe), "--home", str(home_with_bangla_product), "catalog", "search", "মসুর"],
                          env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    out = proc.stdout.decode("utf-8")  # strict: the bytes on the pipe are UTF-8
    assert NAME in out and "DAL-1" in out
    assert b"Traceback" not in proc.stderr and b"UnicodeEncodeError" not in proc.stderr
