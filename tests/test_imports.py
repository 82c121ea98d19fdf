"""The import graph of the project's packages, read from their source (nothing is imported).

It must have no cycle, and the branch side must never reach the cloud side: the branch
executable ships branch_client/ and shared/ only.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Package folder -> the name it is imported under (function_app/ is the deployed folder,
# branchsync_cloud the installed package inside it).
PACKAGES = {
    ROOT / "shared": "shared",
    ROOT / "branch_client": "branch_client",
    ROOT / "function_app" / "branchsync_cloud": "branchsync_cloud",
    ROOT / "headoffice": "headoffice",
}
CLOUD = ("branchsync_cloud",)


def modules() -> dict[str, Path]:
    """{dotted module name: file} for every module of the packages above."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_by(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod itself.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_by(name, path, set(found)) for name, path in found.items()}


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when there is none (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_walk_sees_every_package_and_the_imports_between_them():
    edges = graph()
    assert {"shared.models", "branch_client.sync", "branchsync_cloud.ingest", "headoffice.devhost"} <= set(edges)
    assert "shared.models" in edges["branchsync_cloud.ingest"]  # an absolute import
    assert "branchsync_cloud.apply" in edges["branchsync_cloud.ingest"]  # a relative one


def test_the_cycle_search_finds_a_cycle_when_there_is_one():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_the_project_has_no_import_cycle():
    assert cycle_in(graph()) is None


def test_the_branch_side_never_imports_the_cloud_side():
    edges = graph()
    for name in (n for n in edges if n.split(".")[0] == "branch_client"):
        reached = {m for m in reachable(edges, name) if m.split(".")[0] in CLOUD}
        assert not reached, f"{name} reaches the cloud side: {sorted(reached)}"
