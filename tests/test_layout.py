"""The package's shape (issue 10): one application layer, shells over it, and no import circles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "digest"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every digest module → the digest modules it imports, at the top or inside functions (a lazy import that
    breaks a circle is still a circle), leaving out imports only for type checking."""
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and ast.unparse(block.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}
                     for node in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in type_only or not isinstance(node, ast.ImportFrom | ast.Import):
                continue
            targets = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and node.module:
                targets += [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("digest") and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_only_the_application_layer_drives_the_stages():
    graph = import_graph()
    shells = ["digest.cli", "digest.cli_ops", "digest.cli_editions", "digest.scheduler", "digest.web.desk"]
    for shell in shells:
        assert not graph[shell] & {"digest.sources", "digest.select", "digest.sender"}, shell
    assert "digest.scheduler" not in graph["digest.config"]
    assert not (PACKAGE / "pipeline.py").exists()
