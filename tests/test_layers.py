"""The package's layers point one way: read from the code's own imports (as text), never by running it.

datasets -> models -> embeddings / probes -> training / cae -> model zoo -> studies -> book runner, with the
small helpers (paths, device, stats, ...) at the bottom. A test fails on any import circle, on an import that
points up, on a package import hidden inside a function, and on a private name taken from another module.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clipscope_utils"
NAME = PACKAGE.name

#: rank of each unit (a top-level module or sub-package); an import between two units must point down
RANKS = {
    "paths": -1, "versions": -1, "device": 0, "stats": 0, "paper": 0, "claims": 0, "parallel": 0, "optim": 0, "figures": 0,
    "datasets": 1,
    "models": 2,
    "embeddings": 3, "probes": 3, "attention": 3,
    "measure": 4, "compositional": 4,
    "training": 5, "cae": 5,
    "zoo": 6,
    "studies": 7,
    "book": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(mod: str) -> bool:
    return MODULES[mod].name == "__init__.py"


def absolute(mod: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_package(mod) else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str):
    """(imported module, node, inside a function?, names) for every package-own import of ``mod``."""
    tree = ast.parse(MODULES[mod].read_text())
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                target = absolute(mod, child)
                if target.split(".")[0] == NAME:
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        out.append((sub if sub in MODULES else target, child, in_function, alias.name))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == NAME:
                        out.append((alias.name, child, in_function, ""))
            visit(child, inside)

    visit(tree, False)
    return out


def edges():
    """Import edges between package modules, with the package ``__init__`` files Python runs on the way
    (not the importer's own ancestors, which are running already)."""
    graph = {m: set() for m in MODULES}
    for mod in MODULES:
        own = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
        for target, *_ in imports(mod):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in MODULES and step not in own and step != mod:
                    graph[mod].add(step)
    return graph


def unit(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_unit_has_a_rank() -> None:
    assert {unit(m) for m in MODULES if unit(m)} - set(RANKS) == set()


def test_no_import_circle_in_the_package() -> None:
    graph = edges()
    index, low, stack, on, circles = {}, {}, [], set(), []

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert circles == []


def test_imports_point_down_the_layers() -> None:
    up = [f"{m} -> {t}" for m, targets in edges().items() for t in targets
          if unit(m) and unit(t) and unit(m) != unit(t) and RANKS[unit(m)] <= RANKS[unit(t)]]
    assert up == []


def test_models_never_import_training_and_probes_load_no_model() -> None:
    for mod, targets in edges().items():
        if unit(mod) == "models":
            assert not any(unit(t) in ("training", "zoo", "studies") for t in targets), mod
        if unit(mod) == "probes":  # pure metrics of embeddings and labels
            assert not any(unit(t) in ("models", "embeddings", "zoo", "training") for t in targets), mod


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_no_package_import_inside_a_function(mod: str) -> None:
    hidden = [f"line {node.lineno}: {target}" for target, node, inside, _ in imports(mod) if inside]
    assert hidden == []


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_no_private_name_from_another_module(mod: str) -> None:
    taken = [f"{name} from {target}" for target, _, _, name in imports(mod)
             if name.startswith("_") and not name.startswith("__") and target != mod]
    assert taken == []
