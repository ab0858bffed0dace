"""The package's shape, checked by reading its source (no TensorFlow): imports flow one way
through the stages, and the seams the restructuring made stay made."""
from __future__ import annotations

import ast
import os
import re

from conftest import REPO

PACKAGE = os.path.join(REPO, "tftransfer")
# Lowest first. A module may import from its own package or from any package before it.
# search comes after train because a trial trains with train's phases.
LAYERS = ("config", "outputs", "distribute", "data", "model", "train", "search", "evaluate",
          "export", "compress", "variants", "report", "cli", "assets")
ENTRY_MODULES = ("run", "predict", "launch", "lr_find", "private_api")   # top-level modules


def _modules() -> dict[str, str]:
    """{dotted module name: path} of every module in the package."""
    found = {}
    for root, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[relative.removesuffix(".__init__")] = path
    return found


def _imported(path: str, module: str = "") -> set[str]:
    """tftransfer modules or packages that `path` imports, at any depth (lazy ones too)."""
    names = set()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("tftransfer.")}


def _layer(dotted: str) -> int | None:
    parts = dotted.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_package_has_a_sub_package_per_stage_and_few_top_level_modules():
    top = sorted(n[:-3] for n in os.listdir(PACKAGE) if n.endswith(".py") and n != "__init__.py")
    packages = sorted(n for n in os.listdir(PACKAGE)
                      if os.path.isfile(os.path.join(PACKAGE, n, "__init__.py")))
    assert packages == sorted(LAYERS)
    assert set(top) <= set(ENTRY_MODULES), top


def test_imports_flow_one_way_through_the_stages():
    backwards = []
    for module, path in _modules().items():
        own = _layer(module)
        if own is None or module.endswith(".__main__"):  # entry points may import any stage
            continue
        for target in _imported(path, module):
            theirs = _layer(target)
            if theirs is not None and theirs > own:
                backwards.append(f"{module} imports {target}")
            if theirs is None and target.split(".")[1] in ("run", "predict", "launch", "lr_find"):
                backwards.append(f"{module} imports the entry module {target}")
    assert not backwards, "imports running back up the pipeline:\n" + "\n".join(backwards)


def test_importing_a_stage_package_imports_none_of_its_modules():
    """Importing one module of a stage never pulls in the stage's TensorFlow modules (the
    CLIs check their flags before TensorFlow starts)."""
    for name in LAYERS:
        init = os.path.join(PACKAGE, name, "__init__.py")
        heavy = {n for n in _top_level_imports(init)
                 if n.split(".")[0] in ("tftransfer", "tensorflow", "keras")}
        assert not heavy, f"{name}/__init__.py imports {sorted(heavy)}"


def _top_level_imports(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _source_lines():
    for module, path in _modules().items():
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                yield module, number, line


def test_seams_stay_made():
    found = {"get_layer(\"head\")": [], "__class__ =": [], "serving_default": []}
    for module, number, line in _source_lines():
        code = line.split("#")[0]
        if re.search(r"get_layer\(\s*[\"'](head|backbone)[\"']", code):
            found["get_layer(\"head\")"].append(f"{module}:{number}")
        if re.search(r"\.__class__\s*=[^=]", code):
            found["__class__ ="].append(f"{module}:{number}")
        if "serving_default" in code:
            found["serving_default"].append(module)
    assert not found["get_layer(\"head\")"], found
    assert not found["__class__ ="], found
    assert set(found["serving_default"]) == {"tftransfer.export.signatures"}, found
