"""packaging/functions/build_package.py: the zip Azure Functions deploys is complete and runs.

The slow test does what the platform does with the zip: unpack it, install requirements.txt
into a fresh virtual environment, import function_app from the unpacked folder only, and list
the functions the app registers.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "functions" / "build_package.py"

EXPECTED_ROUTES = {
    ("health", "GET"), ("enroll", "POST"), ("pull", "GET"), ("push", "POST"),
    ("manage/branches", "POST"), ("manage/branches", "GET"), ("manage/catalog", "POST"),
    ("manage/catalog/{sku}", "DELETE"), ("manage/sales", "GET"), ("manage/reports/price-differences", "GET"),
    ("manage/catalog/compact", "POST"), ("manage/reports/sales", "GET"), ("manage/reports/shifts", "GET"),
    ("manage/reports/exceptions", "GET"), ("manage/reports/rebuild", "POST"),
}

# Runs inside the package's own virtual environment, with only the unpacked folder on sys.path
# (-I: no PYTHONPATH, no user site, no current directory), so nothing leaks in from the checkout.
LIST_FUNCTIONS = """
import json, sys
sys.path.insert(0, sys.argv[1])
import function_app
out = []
for f in function_app.app.get_functions():
    t = f.get_trigger().get_dict_repr()
    out.append({"name": f.get_function_name(), "type": t["type"], "route": t.get("route"),
                "methods": [str(m) for m in t.get("methods") or []], "queue": t.get("queueName"),
                "connection": t.get("connection"), "schedule": t.get("schedule"),
                "shared_from": sys.modules["shared"].__file__})
print(json.dumps(out))
"""


def load_builder():
    spec = importlib.util.spec_from_file_location("build_package", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder():
    return load_builder()


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "function_app.zip"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--output", str(out)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert "wrote" in proc.stdout and "bytes" in proc.stdout, proc.stdout
    return out


def test_package_holds_the_app_and_the_shared_package_at_the_zip_root(package):
    names = set(zipfile.ZipFile(package).namelist())
    assert {"function_app.py", "host.json", "requirements.txt", "branchsync_cloud/__init__.py", "branchsync_cloud/service.py",
            "branchsync_cloud/ingest.py", "shared/__init__.py", "shared/models.py"} <= names
    app_files = {p.relative_to(ROOT / "function_app").as_posix() for p in (ROOT / "function_app" / "branchsync_cloud").rglob("*.py")}
    assert app_files <= names, "a module of branchsync_cloud/ is missing from the package"


def test_package_leaves_out_caches_local_settings_and_tests(package):
    for name in zipfile.ZipFile(package).namelist():
        parts = name.split("/")
        assert "__pycache__" not in parts and not name.endswith(".pyc"), name
        assert not parts[-1].startswith("local.settings"), name
        assert "tests" not in parts and not parts[-1].startswith("test_"), name


def test_package_is_byte_for_byte_reproducible(package, tmp_path):
    again = tmp_path / "again.zip"
    subprocess.run([sys.executable, str(SCRIPT), "--output", str(again)], capture_output=True, check=True, timeout=60)
    assert again.read_bytes() == package.read_bytes()


def test_exclusion_rules(builder):
    excluded = builder.is_excluded
    assert excluded(Path("cloud/__pycache__/x.cpython-311.pyc"))
    assert excluded(Path("local.settings.json")) and excluded(Path("local.settings.example.json"))
    assert excluded(Path("tests/test_x.py")) and excluded(Path("branchsync_cloud/test_thing.py"))
    assert not excluded(Path("branchsync_cloud/service.py")) and not excluded(Path("host.json"))


def test_a_local_settings_file_beside_the_app_never_enters_the_zip(builder, tmp_path):
    app = tmp_path / "function_app"
    shutil.copytree(ROOT / "function_app", app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "local.settings.json").write_text('{"Values": {"BRANCHSYNC_ADMIN_KEY": "local-secret"}}')
    (app / "tests").mkdir()
    (app / "tests" / "helper.py").write_text("")
    names = set(builder.collect(app, ROOT / "shared"))
    assert "function_app.py" in names and "branchsync_cloud/service.py" in names
    assert not [n for n in names if "local.settings" in n or n.startswith("tests/") or n == ".funcignore"]


def test_the_funcignore_keeps_local_settings_tests_and_caches_out_and_the_build_applies_it(builder, tmp_path):
    lines = [l.strip() for l in (ROOT / "function_app" / ".funcignore").read_text().splitlines()]
    assert {"local.settings.json", "tests/", "__pycache__/", ".venv/"} <= set(lines)
    app = tmp_path / "app"
    app.mkdir()
    (app / ".funcignore").write_text("notes/\n*.csv\n")
    assert builder.is_excluded(Path("notes/todo.py"), app) and builder.is_excluded(Path("cloud/data.csv"), app)
    assert not builder.is_excluded(Path("branchsync_cloud/service.py"), app)


def test_vendoring_copies_shared_next_to_the_app_and_removes_only_its_own_copy(builder, tmp_path):
    app, shared = tmp_path / "app", tmp_path / "shared"
    app.mkdir()
    (shared / "__pycache__").mkdir(parents=True)
    (shared / "__init__.py").write_text("")
    (shared / "__pycache__" / "x.pyc").write_bytes(b"")
    target = builder.vendor_shared(app, shared)
    assert (target / "__init__.py").is_file() and not (target / "__pycache__").exists()
    builder.unvendor_shared(app)
    assert not target.exists()
    # A shared/ folder the script did not make is never deleted or overwritten.
    (app / "shared").mkdir()
    (app / "shared" / "mine.py").write_text("")
    builder.unvendor_shared(app)
    assert (app / "shared" / "mine.py").exists()
    with pytest.raises(SystemExit):
        builder.vendor_shared(app, shared)


@pytest.mark.slow
def test_unpacked_package_installs_and_registers_every_function(package, tmp_path):
    app = tmp_path / "wwwroot"
    zipfile.ZipFile(package).extractall(app)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # pip's wheel cache (the user cache) is reused between runs, so this is mostly local work.
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(app / "requirements.txt")],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    listed = subprocess.run([str(python), "-I", "-c", LIST_FUNCTIONS, str(app)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    functions = json.loads(listed.stdout)

    assert all(Path(f["shared_from"]).is_relative_to(app) for f in functions), "shared came from outside the package"
    http = {(f["route"], m.split(".")[-1].upper()) for f in functions if f["type"] == "httpTrigger" for m in f["methods"]}
    assert EXPECTED_ROUTES <= http
    queue = [f for f in functions if f["type"] == "queueTrigger"]
    assert [(f["name"], f["queue"], f["connection"]) for f in queue] == [("apply_sales", "sales", "AzureWebJobsStorage")]
    timers = [(f["name"], f["schedule"]) for f in functions if f["type"] == "timerTrigger"]
    assert timers == [("compact_catalog", "%CATALOG_COMPACT_SCHEDULE%"), ("write_lake", "%LAKE_WRITE_SCHEDULE%")]
