"""The package's import graph is layered: no module imports one above it, and there are no import cycles.

Read with `ast` from the source files (nothing of r2i is imported, so this runs in milliseconds). Imports inside
functions count too: a late import hides a cycle from Python, not from a reader.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. A module may import modules of its own layer or of the layers below it, never of a layer above.
# An entry names a module or a whole package (every module under it). A new module must be placed here: the layer
# says what it may depend on, which is the design decision a reviewer should see.
LAYERS: tuple[tuple[str, ...], ...] = (
    # Shared types and process setup, importable from anywhere without loading JAX models or environments.
    ("r2i.errors", "r2i.spaces", "r2i.runtime", "r2i.signals", "r2i.runlock", "r2i.allocator", "r2i.presets",
     "r2i.results_csv", "r2i.threads"),
    # Numerics and bookkeeping that know nothing of models or environments.
    ("r2i.dists", "r2i.scan_grad", "r2i.nets", "r2i.schema", "r2i.config", "r2i.metrics", "r2i.video", "r2i.replay",
     "r2i.replay_disk", "r2i.checkpoint", "r2i.distributed", "r2i.clocks", "r2i.console", "r2i.rundir",
     "r2i.preflight"),
    # The environment layer: protocol, adapters, checks, vector driver.
    ("r2i.envs",),
    # The model: S5 maths, sequence models, world model, actor-critic.
    ("r2i.ssm", "r2i.sequence", "r2i.worldmodel", "r2i.behavior"),
    # The agent: parameters, optimisers, the jitted policy and update.
    ("r2i.agent",),
    # Programs built on the agent: the training loop and evaluation, benchmarks, figures, sweeps.
    ("r2i.loop", "r2i.evaluation", "r2i.run", "r2i.bench", "r2i.plot", "r2i.sweep", "r2i.sweep_status"),
    # Entry points for users.
    ("r2i.api", "r2i.doctor"),
    ("r2i.cli", "r2i"),
)

# The model and the environment layer sit side by side: model code names spaces through the leaf `r2i.spaces`, so
# that building an agent never loads adapters, the driver or its worker processes (docs/design.md §2).
MODEL = ("r2i.ssm", "r2i.sequence", "r2i.worldmodel", "r2i.behavior", "r2i.agent")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / "r2i").rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The r2i modules that `path` imports, anywhere in the file. `from pkg import name` counts as importing the
    submodule pkg.name when that is a module, else pkg itself."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "r2i")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "r2i":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module: str) -> int:
    for index, entries in enumerate(LAYERS):
        if any(module == e or (e != "r2i" and module.startswith(e + ".")) for e in entries):
            return index
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS in tests/test_layers.py")


def test_every_module_has_a_layer():
    for module in _modules():
        _layer(module)


def test_no_module_imports_a_layer_above_it():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_model_code_does_not_import_the_environment_layer():
    crossing = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.startswith(MODEL)
        for target in sorted(targets)
        if target == "r2i.envs" or target.startswith("r2i.envs.")
    ]
    assert not crossing, "model code must take Space / ActionSpace from r2i.spaces:\n" + "\n".join(crossing)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_cycles_and_upward_imports(tmp_path, monkeypatch):
    """The checks above would pass vacuously if the parser missed imports: run them on a made-up package."""
    pkg = tmp_path / "r2i"
    (pkg / "envs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from r2i import agent\n")  # upward
    (pkg / "agent.py").write_text("def f():\n    from r2i.envs import base\n")  # late import, model -> envs
    (pkg / "envs" / "__init__.py").write_text("from .base import Env\n")  # relative
    (pkg / "envs" / "base.py").write_text("import r2i.envs\n")  # cycle with the package
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    graph = _graph()
    assert graph["r2i.errors"] == {"r2i.agent"}
    assert graph["r2i.agent"] == {"r2i.envs.base"}
    assert graph["r2i.envs"] == {"r2i.envs.base"}
    assert graph["r2i.envs.base"] == {"r2i.envs"}
    for check in (test_no_module_imports_a_layer_above_it, test_model_code_does_not_import_the_environment_layer,
                  test_no_import_cycles):
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} passed on a package that breaks it")
