"""docs/ops.md and docs/workbook.json ask only for what the code emits.

Every ```kusto block in docs/ops.md is checked against function_app/ (read with ast, no
import): its tables are ones the app writes to, its columns exist in those tables, every
custom dimension (`Properties.x`) is an `extra=` key of a log call (AppTraces) or an
attribute of a metric (AppMetrics), every metric name is one branchsync_cloud/telemetry.py creates,
and every message prefix starts a log line of the app (or is one of the Functions host's
own lines). The alert queries in infra/modules/alerts.bicep must appear in ops.md, and the
workbook must hold exactly the ops.md queries.

After editing ops.md: `.venv/bin/python tests/cloud/test_ops_docs.py --write` rewrites
docs/workbook.json.
"""

import ast
import json
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "docs" / "ops.md"
WORKBOOK = ROOT / "docs" / "workbook.json"
APP = ROOT / "function_app"
ALERTS = ROOT / "infra" / "modules" / "alerts.bicep"

# Columns of the workspace-based Application Insights tables (Azure Monitor Logs reference).
COMMON = {"TimeGenerated", "Properties", "OperationName", "OperationId", "ParentId", "AppRoleName", "AppRoleInstance",
          "SDKVersion", "ItemCount", "ResourceGUID", "ClientType", "Type", "Measurements"}
SCHEMA = {
    "AppTraces": COMMON | {"Message", "SeverityLevel"},
    "AppRequests": COMMON | {"Name", "Success", "ResultCode", "DurationMs", "Url", "Id", "Source"},
    "AppExceptions": COMMON | {"ExceptionType", "OuterMessage", "OuterType", "OuterMethod", "InnermostMessage",
                               "InnermostType", "ProblemId", "SeverityLevel", "Details", "Message"},
    "AppMetrics": {"TimeGenerated", "Name", "Sum", "Count", "Min", "Max", "Properties", "AppRoleName", "AppRoleInstance",
                   "SDKVersion", "ItemCount", "Type", "ResourceGUID", "ClientType", "OperationName", "OperationId"},
}
# Lines the Functions host writes, not the app: the poison-queue move (host.json maxDequeueCount).
HOST_PHRASES = {"MaxDequeueCount"}


# --- what the code emits ---------------------------------------------------------------------


@cache
def _trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(), str(p)) for p in sorted(APP.rglob("*.py"))}


def _dict_keys(node) -> dict[str, object]:
    """Keys (and constant values) of a dict literal, or of the keywords of a call such as `dims(branch=...)`."""
    if isinstance(node, ast.Call) and not node.args:
        return {kw.arg: kw.value.value if isinstance(kw.value, ast.Constant) else None
                for kw in node.keywords if kw.arg}
    if not isinstance(node, ast.Dict):
        return {}
    out = {}
    for k, v in zip(node.keys, node.values):
        if isinstance(k, ast.Constant) and isinstance(k.value, str):
            out[k.value] = v.value if isinstance(v, ast.Constant) else None
    return out


@cache
def emitted() -> dict:
    log_dims: set[str] = set()
    events: set[str] = set()
    formats: list[str] = []
    metric_dims: set[str] = set()
    metric_names: set[str] = set()
    functions: set[str] = set()
    for path, tree in _trees().items():
        constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and path.name == "function_app.py":
                functions.add(node.name)
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("debug", "info", "warning", "error", "exception", "critical") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                formats.append(node.args[0].value)
                for kw in node.keywords:
                    if kw.arg == "extra":
                        keys = _dict_keys(kw.value)
                        log_dims |= set(keys)
                        if isinstance(keys.get("event"), str):
                            events.add(keys["event"])
            if name == "_record" and len(node.args) == 3:
                metric_dims |= set(_dict_keys(node.args[2]))
            if name in ("create_counter", "create_histogram", "create_up_down_counter", "create_gauge") and node.args:
                arg = node.args[0]
                value = arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", ""))
                if isinstance(value, str):
                    metric_names.add(value)
    return {"log_dims": log_dims, "events": events, "formats": formats, "metric_dims": metric_dims,
            "metric_names": metric_names, "functions": functions}


# --- checking one query ----------------------------------------------------------------------


def _strip_strings(query: str) -> str:
    return re.sub(r'@?"(?:[^"\\]|\\.)*"', '""', query)


def problems(query: str) -> list[str]:
    """What in `query` the code does not emit; empty when all is well."""
    found: list[str] = []
    code = emitted()
    bare = _strip_strings(query)
    first = re.match(r"\s*([A-Za-z_]\w*)", bare).group(1)
    tables = {first} | set(re.findall(r"\b(?:join|union)\b(?:\s+kind\s*=\s*\w+)?[\s(]*([A-Za-z_]\w*)", bare))
    for table in tables:
        if table not in SCHEMA:
            found.append(f"table {table} is not one the app writes to ({', '.join(sorted(SCHEMA))})")
    columns = set().union(*(SCHEMA.get(t, set()) for t in tables))
    for ident in sorted(set(re.findall(r"(?<![\w.])([A-Z]\w*)", bare)) - set(SCHEMA)):
        if ident not in columns:
            found.append(f"column {ident} is not in {', '.join(sorted(tables))}")
    dims = set(re.findall(r"\bProperties\.(\w+)", query)) | set(re.findall(r"\bProperties\[\s*['\"](\w+)['\"]\s*\]", query))
    allowed = (code["log_dims"] if "AppTraces" in tables else set()) | (code["metric_dims"] if "AppMetrics" in tables else set())
    for dim in sorted(dims - allowed):
        found.append(f"custom dimension {dim} is not emitted by function_app/ for {', '.join(sorted(tables))}")
    for event in re.findall(r"Properties\.event\)?\s*==\s*\"(\w+)\"", query):
        if event not in code["events"]:
            found.append(f"event {event!r} is never logged (extra event=)")
    for metric in re.findall(r"\"(branchsync\.[\w.]+)\"", query):
        if metric not in code["metric_names"] or "AppMetrics" not in tables:
            found.append(f"metric {metric} is not created in branchsync_cloud/telemetry.py (or not queried from AppMetrics)")
    if "AppRequests" in tables:
        for fn in re.findall(r"\bName\s*==\s*\"(\w+)\"", query):
            if fn not in code["functions"]:
                found.append(f"function {fn} is not registered in function_app.py")
    for prefix in re.findall(r"Message\s+startswith\s+\"([^\"]+)\"", query):
        if not any(f.startswith(prefix) for f in code["formats"]):
            found.append(f"no log line of the app starts with {prefix!r}")
    for phrase in re.findall(r"Message\s+(?:has|contains)\s+\"([^\"]+)\"", query):
        if phrase not in HOST_PHRASES and phrase != _poison_queue() and not any(phrase in f for f in code["formats"]):
            found.append(f"no log line contains {phrase!r}")
    for pattern in re.findall(r"extract\(@\"([^\"]+)\"", query):
        literal = re.match(r"\^?([\w =:-]*)", pattern).group(1)
        literal = literal.split("\\")[0]
        if literal and not any(literal in f for f in code["formats"]):
            found.append(f"no log line contains {literal!r} (extract pattern {pattern!r})")
    return found


@cache
def _poison_queue() -> str:
    source = (APP / "branchsync_cloud" / "queue_access.py").read_text()
    return re.search(r'^SALES_QUEUE = "(\w+)"$', source, re.M).group(1) + "-poison"


# --- ops.md and the workbook -----------------------------------------------------------------


def kusto_blocks(text: str) -> list[tuple[str, str]]:
    """(heading, query) for every ```kusto block, the heading being the nearest ### or ## above it."""
    out, heading = [], ""
    for match in re.finditer(r"^(#{2,3}) ([^\n]+)$|^```kusto\n(.*?)^```$", text, re.M | re.S):
        if match.group(2):
            heading = match.group(2).strip()
        else:
            out.append((heading, match.group(3).strip()))
    return out


def normalize(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip()


def build_workbook(text: str) -> dict:
    items = [{"type": 1, "name": "intro", "content": {"json": (
        "## branchsync operations\n"
        "The queries of docs/ops.md: the three alerts, then the daily questions. "
        "Open this workbook on the Log Analytics workspace behind Application Insights.")}}]
    seen: dict[str, int] = {}
    for heading, query in kusto_blocks(text):
        seen[heading] = seen.get(heading, 0) + 1
        title = heading if seen[heading] == 1 else f"{heading} ({seen[heading]})"
        name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        items.append({"type": 3, "name": name, "content": {
            "version": "KqlItem/1.0", "title": title, "query": query, "size": 0, "queryType": 0,
            "resourceType": "microsoft.operationalinsights/workspaces",
            "timeContext": {"durationMs": 7 * 24 * 3600 * 1000},
            "visualization": "timechart" if "bin(TimeGenerated" in query else "table",
        }})
    return {"version": "Notebook/1.0", "items": items, "fallbackResourceIds": [],
            "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json"}


def alert_queries() -> dict[str, str]:
    text = ALERTS.read_text()
    out = {}
    for name, body in re.findall(r"var (\w+Query) = (?:replace\()?'''(.*?)'''", text, re.S):
        out[name] = body.replace("STALE_HOURS", "6")  # the default staleBranchHours
    return out


# --- tests -----------------------------------------------------------------------------------


def test_ops_md_has_kusto_queries_for_every_question():
    headings = {h for h, _ in kusto_blocks(OPS.read_text())}
    for wanted in ("Which branches are behind", "What failed today", "Sales applied per hour", "Dead letters today"):
        assert wanted in headings, f"docs/ops.md has no query under '### {wanted}'"


def test_every_ops_query_uses_only_what_the_code_emits():
    blocks = kusto_blocks(OPS.read_text())
    assert len(blocks) >= 10
    report = {h + ": " + q.splitlines()[0]: problems(q) for h, q in blocks}
    assert {k: v for k, v in report.items() if v} == {}


def test_the_code_emits_what_the_docs_describe():
    code = emitted()
    assert {"branch", "seq_first", "seq_last", "sales_applied", "duration_ms", "lag_s", "pending",
            "client_version", "code"} <= code["log_dims"]
    assert {"apply", "pull", "dead_letter"} <= code["events"]
    assert code["metric_names"] == {"branchsync.sales_applied", "branchsync.dead_letters", "branchsync.apply_latency_ms"}
    assert {"branch", "code", "status"} <= code["metric_dims"]


def test_the_checker_refuses_what_the_code_does_not_emit():
    bad = {
        'AppTraces | where tostring(Properties.till_id) == "x"': "custom dimension till_id",
        'AppTraces | where Properties.event == "sync"': "event 'sync'",
        'AppMetrics | where Name == "branchsync.sales_refunded"': "metric branchsync.sales_refunded",
        'AppTraces | where Message startswith "synced branch="': "starts with 'synced branch='",
        'customEvents | take 1': "table customEvents",
        'AppTraces | project Duration': "column Duration",
        'AppRequests | where Name == "apply_refunds"': "function apply_refunds",
        'AppTraces | extend t = extract(@"till=(\\w+)", 1, Message)': "'till='",
        'AppMetrics | where tostring(Properties.lag_s) == "1"': "custom dimension lag_s",  # a log dimension, not a metric's
    }
    for query, expected in bad.items():
        found = problems(query)
        assert any(expected in p for p in found), (query, found)
    assert problems('AppTraces | where tostring(Properties.event) == "apply" | project Properties.lag_s') == []


def test_every_alert_query_of_the_infra_is_in_ops_md():
    documented = {normalize(q) for _, q in kusto_blocks(OPS.read_text())}
    alerts = alert_queries()
    assert set(alerts) == {"poisonQuery", "failureQuery", "staleQuery"}
    for name, query in alerts.items():
        assert normalize(query) in documented, f"alerts.bicep {name} is not in docs/ops.md as deployed"
        assert problems(query) == [], name


# Application Insights telemetry types behind each table (metrics are pre-aggregated, never sampled).
SAMPLED_TYPE = {"AppTraces": "Trace", "AppRequests": "Request", "AppExceptions": "Exception"}


def tables_of(query: str) -> set[str]:
    bare = _strip_strings(query)
    return {t for t in SCHEMA if re.search(rf"\b{t}\b", bare)}


def test_every_table_an_alert_or_ops_query_counts_is_excluded_from_sampling():
    # A sampled row stands for several: an alert counting rows would then miss poison moves
    # or stale branches. host.json must exclude every telemetry type the queries read.
    sampling = json.loads((APP / "host.json").read_text())["logging"]["applicationInsights"]["samplingSettings"]
    excluded = {t.strip() for t in sampling.get("excludedTypes", "").split(";")} if sampling.get("isEnabled", True) else None
    queries = list(alert_queries().values()) + [q for _, q in kusto_blocks(OPS.read_text())]
    needed = {SAMPLED_TYPE[t] for q in queries for t in tables_of(q) if t in SAMPLED_TYPE}
    assert needed >= {"Trace", "Request"}
    assert excluded is None or needed <= excluded, f"host.json samples {sorted(needed - excluded)}"


def test_the_workbook_shows_exactly_the_ops_queries():
    workbook = json.loads(WORKBOOK.read_text())
    assert workbook == build_workbook(OPS.read_text()), \
        "docs/workbook.json is out of date: run .venv/bin/python tests/cloud/test_ops_docs.py --write"
    queries = [i["content"]["query"] for i in workbook["items"] if i["type"] == 3]
    assert len(queries) == len(kusto_blocks(OPS.read_text()))
    assert all(i["content"]["version"] == "KqlItem/1.0" for i in workbook["items"] if i["type"] == 3)


if __name__ == "__main__" and "--write" in sys.argv:
    WORKBOOK.write_text(json.dumps(build_workbook(OPS.read_text()), indent=2) + "\n")
    print(f"wrote {WORKBOOK}")
