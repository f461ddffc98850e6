"""The direction of imports (docs/architecture.md), read from the source with ast.

Layers, lowest first: core <- datasets <- vision | text <- registry <- harness <- cli; the
workloads stand on core alone, the loop of one run on core and the workloads, the ground
truth on the loop. Every import counts, at the top of a module or inside a function (a lazy
import is still a dependency). There is no import cycle between modules, and the core
imports no framework when it is imported.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"pipelines": "feedbench.pipelines", "datasets": "feedbench.datasets", "text": "feedbench.text",
            "vision": "feedbench.vision"}

# module prefix -> layer, the longest prefix wins
LAYER_OF = {
    "feedbench.pipelines": "api",  # the package's own __init__: re-exports
    "feedbench.pipelines.__main__": "cli",
    "feedbench.pipelines.core": "core",
    "feedbench.pipelines.workloads": "workloads",
    "feedbench.pipelines.loop": "loop",
    "feedbench.pipelines.truth": "truth",
    "feedbench.pipelines.registry": "registry",
    "feedbench.pipelines.harness": "harness",
    "feedbench.pipelines.cli": "cli",
    "feedbench.pipelines.pytest_plugin": "plugin",
    "feedbench.datasets": "datasets",
    "feedbench.vision": "vision",
    "feedbench.text": "text",
}
# layer -> the layers it may import from (itself included)
ALLOWED = {
    "core": {"core"},
    "datasets": {"core", "datasets"},
    "vision": {"core", "datasets", "vision"},
    "text": {"core", "datasets", "text"},
    "workloads": {"core", "workloads"},
    "loop": {"core", "workloads", "loop"},
    "truth": {"core", "workloads", "loop", "truth"},
    "registry": {"core", "registry"},
    "harness": {"core", "datasets", "vision", "text", "workloads", "loop", "truth", "registry", "harness"},
    "cli": {"core", "datasets", "vision", "text", "workloads", "loop", "truth", "registry", "harness", "cli"},
    "plugin": {"core", "workloads", "loop", "plugin"},
    "api": {"core", "workloads", "loop", "api"},
}
FRAMEWORKS = ("torch", "torchvision", "tensorflow", "tensorflow_datasets", "pyarrow", "PIL", "numpy", "ray")


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((package, *parts))] = path
    return found


MODULES = modules()


def layer(module: str) -> str:
    prefix = max((p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len)
    return LAYER_OF[prefix]


def imports(module: str, path: Path) -> set[str]:
    """The feedbench modules `module` imports, anywhere in its file, resolved to modules:
    ``from a.b import c`` is the module a.b.c where there is one, else a.b."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert all(layer(module) in ALLOWED for module in MODULES)
    assert {"feedbench.pipelines.core.errors", "feedbench.pipelines.loop.measure",
            "feedbench.pipelines.cli"} <= set(MODULES)


def test_imports_go_down_the_layers_only():
    wrong = [f"{module} ({layer(module)}) imports {target} ({layer(target)})"
             for module, targets in sorted(GRAPH.items()) for target in sorted(targets)
             if layer(target) not in ALLOWED[layer(module)]]
    assert not wrong, "\n".join(wrong)


def test_datasets_vision_and_text_use_only_the_core_of_pipelines():
    for module, targets in GRAPH.items():
        if layer(module) in ("datasets", "vision", "text"):
            outside = [t for t in targets if t.startswith("feedbench.pipelines") and layer(t) != "core"]
            assert not outside, f"{module} imports {outside}"


def test_core_imports_nothing_else_of_feedbench():
    for module, targets in GRAPH.items():
        if layer(module) == "core":
            assert all(layer(t) == "core" for t in targets), f"{module} imports {targets}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_between_modules():
    cycle = _cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_a_wrong_import_would_be_caught():
    """The checks read what they claim to read: the loop does import core, and a module of the
    loop importing the harness would break the rule."""
    assert "feedbench.pipelines.core.errors" in GRAPH["feedbench.pipelines.loop.measure"]
    assert layer("feedbench.pipelines.harness.grid") not in ALLOWED[layer("feedbench.pipelines.loop.measure")]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) in ("core", "workloads", "loop", "registry")
                                          and not m.endswith(("dataloader", "measure", "adapter", "devices",
                                                              "timeline", "models"))))
def test_importing_the_lower_layers_loads_no_framework(module):
    """The core, the workloads' names, the loop's config and results, the registry: no torch,
    TensorFlow, pyarrow, Pillow or NumPy at import time (the modules that need torch are the
    DataLoader options, measure and its adapter, devices and CUDA timeline, and the model
    workloads)."""
    code = f"import sys, {module}; print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "[]"
