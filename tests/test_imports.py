"""The project's import graph runs one way (data model <- io <- tokenization <- ... <- CLIs), has no cycle,
and keeps heavy libraries out of annotation; read from the source with `ast`, nothing imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
# A module may import its own layer and the layers before it, never a later one.
LAYERS = (
    "core",
    "genome_io",
    "tokenization",
    "dataset_builder configuration_gffmoe modeling_gffmoe training.data",
    "training annotation scoring pipeline_gffmoe",
    "annotate train init_model demo hub_code bench __main__",  # the CLIs (every `python -m` entry too)
)
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names.split()}


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module outside tests/: top-level files, packages, bench scripts."""
    files = [*REPOSITORY.glob("*.py"), *REPOSITORY.glob("bench/*.py")]
    files += [
        f
        for init in REPOSITORY.glob("*/__init__.py")
        if init.parent.name != "tests"
        for f in init.parent.rglob("*.py")
    ]
    names = (f.relative_to(REPOSITORY).with_suffix("").as_posix().replace("/", ".") for f in files)
    return {name.removesuffix(".__init__"): f for name, f in zip(names, files, strict=True)}


def import_nodes(path: Path):
    return [
        n
        for n in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(n, ast.Import | ast.ImportFrom)
    ]


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name `module` imports (`from a.b import c` -> a.b.c), relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in import_nodes(path):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".") if package else []
            base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [node.module])])
        names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (the longest project prefix of each imported name)."""
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            parts = name.split(".")
            prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
            targets |= {next((p for p in prefixes if p in modules), None)} - {None, module}
        graph[module] = targets
    return graph


def layer(module: str) -> int:
    parts = module.split(".")
    if parts[-1] == "__main__":
        return LAYER_OF["__main__"]
    return next(LAYER_OF[p] for p in (".".join(parts[:n]) for n in range(len(parts), 0, -1)) if p in LAYER_OF)


def test_every_module_has_a_layer_and_imports_none_after_it():
    graph = import_graph()
    assert {"core.features", "genome_io.gff", "annotation.annotator", "annotate"} <= graph.keys()
    upward = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    assert not upward, "\n".join(upward)
    assert not graph["core.features"] | graph["core.errors"] | graph["core.taxa"]  # the leaf


@pytest.mark.parametrize("level", ["module", "package"])
def test_import_graph_has_no_cycle(level):
    graph = import_graph()
    if level == "package":  # top-level packages and modules; a package importing itself is no cycle
        top = lambda name: name.split(".")[0]  # noqa: E731
        packages: dict[str, set[str]] = {}
        for module, targets in graph.items():
            packages.setdefault(top(module), set()).update({top(t) for t in targets} - {top(module)})
        graph = packages
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_package_inits_import_nothing():
    """Importing one module of a package must not load the others (and their libraries)."""
    inits = {module: path for module, path in project_modules().items() if path.name == "__init__.py"}
    assert {"core", "genome_io", "dataset_builder", "scoring"} <= inits.keys()
    assert {module: [ast.unparse(n) for n in import_nodes(path)] for module, path in inits.items()} == {
        module: [] for module in inits
    }


def test_no_private_names_of_other_libraries():
    """A library's `_name` is not its API: it may change in any release."""
    modules = project_modules()
    private = [
        f"{path.relative_to(REPOSITORY)}:{node.lineno}: {ast.unparse(node)}"
        for path in modules.values()
        for node in import_nodes(path)
        if isinstance(node, ast.ImportFrom)
        and not node.level
        and node.module.split(".")[0] not in {*modules, "_common"}  # bench scripts import their _common
        and any(
            part.startswith("_") and not part.startswith("__")
            for part in (*node.module.split("."), *(a.name for a in node.names))
        )
    ]
    assert not private, "\n".join(private)


def test_annotating_loads_neither_datasets_nor_pyarrow():
    """annotate.py and the saved pipeline need neither; a fresh process shows what importing them loads."""
    code = (
        "import sys, annotate, pipeline_gffmoe; print(sorted({'datasets', 'pyarrow'} & sys.modules.keys()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[]"]
