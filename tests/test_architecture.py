"""The house stays one-way (docs/architecture.md): every import in ``adapter/`` points down a
floor or along one, packages never import each other in a circle, the product never imports a
simulator, and the Primero client loads nothing above the ground."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "adapter"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Floors, bottom (0) to top; docs/architecture.md "The floors" says the same in words. A module
# belongs to the floor of its longest prefix listed here.
FLOORS: dict[str, int] = {
    # ground: errors, settings, clock, small shared types
    "adapter": 0,
    "adapter._version": 0,
    "adapter.errors": 0,
    "adapter.config": 0,
    "adapter.clock": 0,
    "adapter.connection": 0,
    "adapter.instruments": 0,
    "adapter.logs": 0,
    "adapter.serving": 0,
    # parts: each does one thing and is handed what it needs
    "adapter.primero": 1,
    "adapter.privacy": 1,
    "adapter.mappings": 1,
    "adapter.departments": 1,
    "adapter.registry": 1,
    "adapter.state": 1,
    "adapter.smtp": 1,
    # engines: runs that move data through the parts
    "adapter.jobs": 2,
    "adapter.retention": 2,
    "adapter.incidents": 2,
    "adapter.ops": 2,
    # wiring: builds jobs from settings; the only place that knows every part
    "adapter.app": 3,
    # faces
    "adapter.api": 4,
    "adapter.cli": 4,
    "adapter.console": 4,
}
SIMULATOR = "adapter.simulator"
# Ground modules `import adapter.primero` may load besides adapter.primero itself.
PRIMERO_MAY_LOAD = {"adapter", "adapter._version", "adapter.errors", "adapter.connection"}
PRIMERO_MAY_LOAD_PREFIXES = ("adapter.primero", "adapter.config", "adapter.instruments")
# Mappings take data and return data (STYLE.md): the wiring reads their files.
FILE_IO = re.compile(r"\bopen\(|\.read_text\(|\.read_bytes\(|\.write_text\(|tomllib\.load")


@dataclass(frozen=True)
class Arrow:
    source: str  # the importing module
    target: str  # the imported module
    lazy: bool  # inside a function or under `if TYPE_CHECKING:`: not loaded on import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def arrows() -> list[Arrow]:
    """Every import of an adapter module by an adapter module, read from the code."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nested = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            or (isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"))
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
                if node.level:
                    base = base[: len(base) - (node.level - 1)]
                    targets = [".".join([*base, *([node.module] if node.module else [])])]
                else:
                    targets = [node.module or ""]
            else:
                continue
            for target in targets:
                if target == "adapter" or target.startswith("adapter."):
                    found.append(Arrow(source, target, id(node) in nested))
    return found


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def floor_of(module: str) -> int:
    prefixes = [p for p in FLOORS if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} is on no floor: add its package to FLOORS and architecture.md"
    return FLOORS[max(prefixes, key=len)]


def listed_back_edges() -> dict[tuple[str, str], str]:
    """The back-edges docs/architecture.md allows, ``- `importer` → `imported`: reason``."""
    listed = {}
    pattern = re.compile(r"^- `(adapter[\w.]*)` → `(adapter[\w.]*)`: (.+)$")
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        if match := pattern.match(line):
            listed[(match[1], match[2])] = match[3].strip()
    return listed


def test_every_arrow_points_down_or_is_a_listed_back_edge() -> None:
    listed = listed_back_edges()
    upward, used = [], set()
    for arrow in arrows():
        if arrow.source.startswith(SIMULATOR) or arrow.target.startswith(SIMULATOR):
            continue
        if floor_of(arrow.target) <= floor_of(arrow.source):
            continue
        key = (arrow.source, arrow.target)
        if key in listed:
            used.add(key)
        else:
            upward.append(f"{arrow.source} → {arrow.target}")
    assert not upward, "imports pointing up a floor (docs/architecture.md):\n" + "\n".join(
        sorted(set(upward))
    )
    stale = set(listed) - used
    assert not stale, f"back-edges listed in architecture.md that no longer exist: {stale}"


def test_no_two_packages_import_each_other_in_a_circle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for arrow in arrows():
        source, target = package_of(arrow.source), package_of(arrow.target)
        if source != target and target != "adapter":
            graph[source].add(target)
    circles = []

    def visit(package: str, path: list[str]) -> None:
        for target in sorted(graph[package]):
            if target in path:
                circles.append(" → ".join([*path[path.index(target) :], target]))
            else:
                visit(target, [*path, target])

    for package in sorted(graph):
        visit(package, [package])
    assert not circles, "packages importing each other in a circle:\n" + "\n".join(
        sorted(set(circles))
    )


def test_the_product_never_imports_a_simulator() -> None:
    """Simulators stand beside the house. Only the CLI's developer commands may load one, and
    only inside the command (so `cpims-adapter run` never loads it)."""
    offending = [
        f"{arrow.source} → {arrow.target}"
        for arrow in arrows()
        if arrow.target.startswith(SIMULATOR)
        and not arrow.source.startswith(SIMULATOR)
        and not (arrow.source.startswith("adapter.cli") and arrow.lazy)
    ]
    assert not offending, "\n".join(offending)


def test_importing_the_primero_client_loads_only_the_ground() -> None:
    code = (
        "import sys, adapter.primero\n"
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] == 'adapter'))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    beyond = [
        module
        for module in loaded
        if module not in PRIMERO_MAY_LOAD
        and not any(module == p or module.startswith(p + ".") for p in PRIMERO_MAY_LOAD_PREFIXES)
    ]
    assert not beyond, f"import adapter.primero loads {beyond}"
    outside_primero = [m for m in loaded if not m.startswith("adapter.primero")]
    assert len(outside_primero) <= 15, outside_primero
    # Not even the settings: the client is handed its section (PrimeroClient.from_settings
    # reads it), so importing it loads no feature's settings.
    assert not [m for m in loaded if m.startswith("adapter.config")], loaded


def test_the_mappings_read_no_files() -> None:
    """``adapter/mappings`` is handed parsed data (adapter/app/departments.py reads the mapping
    files), so a mapping is tested without a file and cannot read one behind the policy."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((PACKAGE / "mappings").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FILE_IO.search(line)
    ]
    assert not found, "file I/O in adapter/mappings (move it to the wiring):\n" + "\n".join(found)
