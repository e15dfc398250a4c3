"""The code's shape (issue 14): no import cycle, and no caller that asks which process it holds."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mnistdiff"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """The mnistdiff modules a file imports, at module level or inside functions (lazy imports count)."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            out |= {base} if node.module else {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnistdiff"):
            out.add(node.module)
    return out


def test_no_import_cycle():
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {d for d in _imports(p) if d in files and d != m} for m, p in files.items()}
    for start in graph:
        stack = [(start, (start,))]
        while stack:
            node, path = stack.pop()
            for dep in graph[node]:
                assert dep != start, f"import cycle: {' -> '.join(path + (dep,))}"
                if dep not in path:
                    stack.append((dep, path + (dep,)))


def test_only_the_process_module_names_a_process():
    """Callers use the Process contract; a branch on a process's name means the contract lacks a member."""
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("processes.py", "config.py"):  # the registry, and the config's default value
            continue
        assert '"gaussian"' not in path.read_text(), f"{path.name} branches on the gaussian process's name"
