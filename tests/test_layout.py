"""The code's shape: the packages import only the stages below them, no import cycle, and no caller that asks
which process it holds."""

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


# What each part of the package may import (its own modules always). The pipeline reads bottom to top:
# shared -> data -> processes, nets -> training -> sampling -> evaluation -> report -> front ends.
SHARED = {"config", "presets", "errors", "files", "machine", "progress"}
FRONT = {"cli", "cli_parser", "api", "experiment", "hooks", "__main__", ""}  # "": the package's __init__
BELOW = {"shared": set(), "data": {"shared"}, "processes": {"shared", "data"}, "nets": {"shared"},
         "training": {"shared", "data", "processes", "nets"},
         "sampling": {"shared", "data", "processes", "nets", "training"},
         "evaluation": {"shared", "data", "processes", "nets", "training", "sampling"},
         "report": {"shared", "data", "processes", "nets", "training", "sampling", "evaluation"}}
# config reads each choice field's allowed values from the registry that implements it (imported on first use),
# so a new process, net or optimiser is one registry entry.
REGISTRIES = {("config", "processes"), ("config", "nets"), ("config", "training")}


def _part(module: str) -> str:
    """mnistdiff.training.loop -> training; mnistdiff.config -> shared; mnistdiff.cli -> front."""
    top = (module.split(".") + [""])[1]
    return "shared" if top in SHARED else "front" if top in FRONT else top


def layer_violations(files: dict[str, Path]) -> list[str]:
    out = []
    for module, path in files.items():
        part, top = _part(module), (module.split(".") + [""])[1]
        if part == "front":
            continue
        for dep in sorted(_imports(path)):
            dep_part = _part(dep)
            if dep == "mnistdiff.__version__":  # a constant of the package, read by the report's footer
                continue
            if dep_part != part and dep_part not in BELOW[part] and (top, dep_part) not in REGISTRIES:
                out.append(f"{module} imports {dep} ({part} may import {', '.join(sorted(BELOW[part])) or 'nothing'})")
    return out


def test_each_stage_imports_only_the_stages_below_it():
    """Training knows nothing of sampling, evaluation or the report; evaluation nothing of the report; ..."""
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    assert set(BELOW) | {"shared", "front"} >= {_part(m) for m in files}, "a new package needs its row in BELOW"
    assert not layer_violations(files)


def test_training_never_imports_matplotlib():
    """Training writes files and never draws: neither the loop nor anything it imports loads matplotlib."""
    import subprocess
    import sys

    code = "import sys, mnistdiff.training.loop; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_layer_check_can_fail(tmp_path):
    pkg = tmp_path / "mnistdiff"
    (pkg / "training").mkdir(parents=True)
    bad = pkg / "training" / "loop.py"
    bad.write_text("from ..report import figures\nfrom ..evaluation.epochs import EpochEvaluation\nfrom .. import data\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, pkg
    try:
        found = layer_violations({"mnistdiff.training.loop": bad})
    finally:
        PACKAGE = saved
    assert len(found) == 2 and any("imports mnistdiff.report " in f for f in found), found


def test_every_package_says_what_it_owns_and_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc.lower(), f"{init.relative_to(PACKAGE)} needs a docstring naming what it may import"


ROOT = PACKAGE.parents[1]


def _process_branches(path: Path) -> list[str]:
    """Places where code asks which process it holds: a process's registry name as a string literal (either
    quote style) compared or matched, or an isinstance check against a Process class."""
    from mnistdiff import processes

    names, classes = set(processes.PROCESSES), {c.__name__ for c in vars(processes).values()
                                                 if isinstance(c, type) and issubclass(c, processes.Process)}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            literals = [p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)]
            found += [f"compares with {v!r} (line {node.lineno})" for v in literals if v in names]
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue) \
                and getattr(node.pattern.value, "value", None) in names:
            found.append(f"matches {node.pattern.value.value!r}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            target = node.args[1]
            named = {getattr(t, "attr", getattr(t, "id", None))
                     for t in (target.elts if isinstance(target, ast.Tuple) else [target])}
            found += [f"isinstance(..., {c}) (line {node.lineno})" for c in sorted(named & classes)]
    return found


def test_only_the_process_module_names_a_process():
    """Callers use the Process contract (family, stochastic, uses, ...); a branch on a process's name or class
    means the contract lacks a member. Scripts and benchmarks are callers too."""
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    offenders = {str(p.relative_to(ROOT)): b for p in files if p.name != "processes.py"
                 for b in [_process_branches(p)] if b}
    assert not offenders, offenders


def test_the_layout_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(cfg, p):\n    if cfg.process.degradation == 'gaussian':\n        pass\n"
                   "    return isinstance(p, processes.EDMNoise) or 'edm' != cfg\n")
    assert len(_process_branches(bad)) == 3
