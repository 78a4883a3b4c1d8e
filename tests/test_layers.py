"""Top-level packages form layers; a package imports only from its own layer or below.

The ground (configuration, topics, message formats) imports nothing of the project's, so
anything can build on it; the command line sits on top and nothing imports it. A new
package must be placed in a layer here. The tests and benchmarks (``tests``, ``bench``) are
not packages of the product, and nothing in the product imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = [
    {"clickpipe", "schemas"},  # the ground: configuration, topics, message formats
    {"steps", "stack"},  # plain processing steps; the local Kafka + Druid stack
    {"app", "agents", "tables", "collector", "druid", "replay"},  # the running parts of the data path
    # what feeds the running parts, reads from them or acts on them
    {"simulate", "dashboard", "privacy", "superset_setup"},
    {"commands"},  # the clickpipe command line and launcher
]
PACKAGES = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
OUTSIDE = {"tests", "bench"}  # beside the product: they import it, never the other way round


def layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def imported_packages(source: str) -> set[str]:
    """Top-level names a module imports (absolute imports only; relative ones stay in the package)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def upward_imports(package: str, modules: dict[str, str]) -> list[str]:
    """'module imports package (layer n)' for each import from a higher layer than ``package``'s."""
    found = []
    for name, source in sorted(modules.items()):
        for target in sorted(imported_packages(source) & set(PACKAGES) - {package}):
            if layer_of(target) > layer_of(package):
                found.append(f"{name} imports {target} (layer {layer_of(target)} > {layer_of(package)})")
    return found


def test_every_package_has_a_layer():
    assert [p for p in PACKAGES if not any(p in layer for layer in LAYERS)] == []


def modules_of(package: str) -> dict[str, str]:
    """Source of each module of ``package``, by its path in the repository."""
    return {str(f.relative_to(ROOT)): f.read_text() for f in (ROOT / package).rglob("*.py")}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_from_a_layer_above_its_own(package):
    assert upward_imports(package, modules_of(package)) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_the_tests_or_the_benchmarks(package):
    assert [name for name, source in sorted(modules_of(package).items()) if imported_packages(source) & OUTSIDE] == []


def test_an_upward_import_is_found():
    assert upward_imports("clickpipe", {"clickpipe/x.py": "from commands.cli import main\nimport os\n"}) == [
        "clickpipe/x.py imports commands (layer 4 > 0)"]
    assert upward_imports("commands", {"commands/x.py": "import clickpipe.config\nfrom . import cli\n"}) == []
