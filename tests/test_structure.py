"""The shape of the package: modules import each other one way (issue "One shape")."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "autoprune"


def _module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every autoprune module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("autoprune"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("autoprune")}
    return found & known.keys()


def test_no_module_imports_one_that_imports_it_back():
    known = _module_names()
    graph = {name: _imports(path, known) for name, path in known.items()}
    cycles = []

    def visit(name: str, path: list[str], done: set[str]) -> None:
        for dep in sorted(graph[name]):
            if dep in path:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in done:
                visit(dep, [*path, dep], done)
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name], done)
    assert not cycles, cycles
    assert "autoprune.baselines" in graph["autoprune.search.run"]  # the search seeds baselines


def test_every_subpackage_ships_in_the_wheel():
    """pyproject lists packages by hand: a new subpackage left out imports from a checkout but
    not from an installed wheel."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT.parent).parts) for init in ROOT.rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
