"""The layers of DESIGN.md §2, as the imports in the source say them: arrows only point down.

Each package may import only the packages listed for it (itself always). ``raft3d.node``'s
wiring module (``build_node``) is where settings become collaborators, so it alone of the
node package reads ``raft3d.config``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "raft3d"

ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "consensus": set(),
    "security": set(),
    "storage": {"consensus"},
    "transport": {"consensus", "security"},
    "node": {"consensus", "storage", "transport", "security"},
    "api": {"node", "domain", "security"},
    "front": {"api", "node", "domain", "security"},
}
# Where settings become collaborators: the node's wiring, and a front process's entry point.
WIRING = {"node/wiring.py": {"config"}, "front/process.py": {"config", "logs", "startup"}}


def raft3d_imports(path: Path) -> set[str]:
    """The first-level raft3d packages that ``path`` imports (at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "raft3d" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below_it(package: str) -> None:
    files = sorted((SRC / package).rglob("*.py"))
    assert files, f"no sources found for raft3d.{package}"
    wrong = {}
    for path in files:
        relative = path.relative_to(SRC).as_posix()
        allowed = ALLOWED[package] | {package} | WIRING.get(relative, set())
        extra = raft3d_imports(path) - allowed
        if extra:
            wrong[relative] = sorted(extra)
    assert not wrong, f"imports against the layering: {wrong}"


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from raft3d.config import Settings\n"
        "def f() -> None:\n"
        "    import raft3d.storage.durable\n"
        "from . import sibling\n"
    )
    assert raft3d_imports(module) == {"config", "storage"}
