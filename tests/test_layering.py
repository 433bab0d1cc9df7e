"""The import graph: the engine never reaches into the application, the training loop stays free of
plotting and the command line, the README's "Dependencies point one way" sentence is the truth, no
modules import each other in a circle but `tensor` and `ops`, and no source file is too long to read
in one sitting.

Imports are read from the source with ``ast`` (at any depth, so function-level imports count too;
relative imports resolved), so a module cannot hide a dependency by importing late.
"""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "convnet"
README = ROOT / "README.md"

ENGINE = {"tensor", "ops", "random", "_checks", "functional", "nn", "optim", "kernels", "errors"}
APPLICATION = {"data", "models", "train", "experiment", "reports", "checkpoint", "files", "process", "cli", "bench",
               "viz", "demo", "onnx", "pth", "distributed", "evaluation", "watch", "language", "pretrained", "run_folder"}
KEPT_OUT_OF_TRAIN = {"viz", "cli", "experiment", "checkpoint", "bench"}
# The package's own __init__ (the public facade) and __main__ (`python -m convnet`) sit outside the layers.
ENTRY_POINTS = {"convnet", "convnet.__main__"}
# A Tensor's methods are its ops and the ops make Tensors, as in PyTorch and tinygrad: the one circle.
ALLOWED_CIRCLES = [{"convnet.tensor", "convnet.ops"}]
MAX_LINES = 400


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def top_level(module):
    """convnet.nn.conv -> 'nn'; convnet -> 'convnet'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def resolve(importer, node):
    """The convnet modules an Import/ImportFrom node in ``importer`` loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if top_level_package(alias.name)}
    if node.level:
        package = importer if MODULES[importer].name == "__init__.py" else importer.rsplit(".", 1)[0]
        base = ".".join(package.split(".")[:len(package.split(".")) - (node.level - 1)])
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module
    if not top_level_package(source):
        return set()
    # `from . import bench` loads the module convnet.bench; `from .files import atomic_write` loads convnet.files.
    return {f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source for alias in node.names}


def top_level_package(name):
    return name == "convnet" or name.startswith("convnet.")


def direct_imports(module):
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= resolve(module, node)
    return found - {module}


IMPORTS = {module: direct_imports(module) for module in MODULES}
# The top-level modules and packages: what the README names and the layers are made of.
UNITS = {top_level(module) for module in MODULES} - {"convnet", "__main__"}


def imports_of(module):
    """What ``module`` loads directly: an import of convnet.a.b loads the package convnet.a too,
    and an import of the package convnet itself counts as what its __init__ loads."""
    targets = set()
    for target in IMPORTS[module]:
        if target == "convnet":
            targets |= IMPORTS["convnet"]
        parts = target.split(".")
        targets |= {".".join(parts[:end]) for end in range(2, len(parts) + 1)}
    return targets - {module}


def chain(start, goal):
    """The shortest import path from ``start`` to a module of the top-level unit ``goal``, or None."""
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for target in sorted(imports_of(path[-1])):
            if top_level(target) == goal:
                return path + [target]
            if target not in seen:
                seen.add(target)
                paths.append(path + [target])
    return None


def test_the_import_reader_finds_relative_function_level_and_package_imports():
    assert "convnet.tensor" in IMPORTS["convnet.optim.optimizer"]  # from ..tensor import Tensor
    assert "convnet.functional" in IMPORTS["convnet.nn.conv"]  # from .. import functional as F
    assert "convnet.nn.module" in IMPORTS["convnet.nn.conv"]  # from .module import Module, Parameter
    assert "convnet.bench" in IMPORTS["convnet.cli.commands"]  # from .. import bench, inside a function
    assert "convnet.cli" in IMPORTS["convnet.__main__"]
    assert {"convnet.tensor", "convnet.nn", "convnet.optim"} <= IMPORTS["convnet"]
    assert "convnet" in IMPORTS["convnet.cli.parser"]  # from .. import __version__
    assert "convnet.nn" in imports_of("convnet.cli.parser")  # ... which runs the package's __init__


def test_every_top_level_module_is_either_engine_or_application():
    assert UNITS - ENGINE - APPLICATION == set(), "new top-level modules: say here which layer they belong to"


def test_the_engine_core_never_imports_the_application_layer():
    violations = [f"{module} imports {target} (`{top_level(target)}` is application, `{top_level(module)}` engine)"
                  for module in MODULES if top_level(module) in ENGINE
                  for target in sorted(imports_of(module)) if top_level(target) in APPLICATION]
    assert not violations, "\n".join(violations)


def test_training_loads_neither_plots_nor_the_command_line_nor_the_run_folder():
    violations = []
    for forbidden in sorted(KEPT_OUT_OF_TRAIN):
        path = chain("convnet.train", forbidden)
        if path:
            violations.append(f"convnet.train imports {path[-1]}" + (f" (through {' -> '.join(path)})"
                                                                    if len(path) > 2 else ""))
    assert not violations, "\n".join(violations)


def parse_layers(text):
    """The layering sentence in ``text`` as layers, highest first; a layer is a list of units, a unit
    the names written together as `a`/`b` (modules that may import each other)."""
    match = re.search(r"^Dependencies point one way:(.*?)(?:\n\s*\n|\Z)", text, flags=re.M | re.S)
    assert match, "README.md has no paragraph starting 'Dependencies point one way:'"
    sentence = " ".join(match.group(1).split()).rstrip(".")
    layers = [[re.findall(r"`([^`]+)`", unit) for unit in layer.split(",")] for layer in sentence.split("→")]
    assert all(unit for layer in layers for unit in layer), \
        f"every layer between the arrows is a comma-separated list of backticked names: {sentence!r}"
    return layers


def naming_problems(layers):
    """Each top-level module or package of convnet must be named exactly once, and nothing else."""
    named = [name for layer in layers for unit in layer for name in unit]
    problems = [f"`{name}` is named {named.count(name)} times" for name in sorted(set(named)) if named.count(name) > 1]
    problems += [f"`{name}` is not a module or package of convnet" for name in sorted(set(named) - UNITS)]
    problems += [f"convnet.{name} is missing from the sentence" for name in sorted(UNITS - set(named))]
    return problems


def edges_against(layers):
    """Every import between two units that does not point to a strictly lower layer."""
    depth = {name: index for index, layer in enumerate(layers) for unit in layer for name in unit}
    unit_of = {name: tuple(unit) for layer in layers for unit in layer for name in unit}
    violations = []
    for module in sorted(set(MODULES) - ENTRY_POINTS):
        for target in sorted(imports_of(module)):
            lower, upper = top_level(module), top_level(target)
            if lower not in depth or upper not in depth or unit_of[lower] == unit_of[upper]:
                continue  # imports within one unit; names missing from the sentence are naming problems
            if depth[upper] < depth[lower]:
                violations.append(f"{module} imports {target}, but the README puts `{upper}` above `{lower}`")
            elif depth[upper] == depth[lower]:
                violations.append(f"{module} imports {target}, but the README puts `{upper}` and `{lower}` "
                                  f"in the same layer")
    return violations


def test_the_sentence_reader_and_checks_catch_a_wrong_sentence():
    layers = parse_layers("Intro.\n\nDependencies point one way: `train`, `cli` → `nn`/`optim`, `backend`\n"
                          "→ `tensor`.\n\nNext paragraph: `data` → `models`.\n")
    assert layers == [[["train"], ["cli"]], [["nn", "optim"], ["backend"]], [["tensor"]]]
    problems = naming_problems(layers)
    assert "`backend` is not a module or package of convnet" in problems
    assert "convnet.viz is missing from the sentence" in problems
    assert "`nn` is named 2 times" in naming_problems(layers + [[["nn"]]])
    violations = edges_against(layers)
    assert ("convnet.cli.training imports convnet.train, but the README puts `train` and `cli` in the same layer"
            in violations)
    assert not [line for line in violations if line.startswith(("convnet.nn.", "convnet.optim."))]  # they import down
    assert ("convnet.optim.optimizer imports convnet.tensor, but the README puts `tensor` above `optim`"
            in edges_against([[["tensor"]], [["optim"]]]))
    assert edges_against([[["tensor", "ops"]]]) == []  # one unit may import itself both ways
    assert ("convnet.ops imports convnet.tensor, but the README puts `tensor` and `ops` in the same layer"
            in edges_against([[["tensor"], ["ops"]]]))


def test_the_readme_names_every_top_level_module_exactly_once():
    problems = naming_problems(parse_layers(README.read_text()))
    assert not problems, "README's 'Dependencies point one way' sentence: " + "; ".join(problems)


def test_every_import_points_down_the_readme_layers():
    violations = edges_against(parse_layers(README.read_text()))
    assert not violations, "\n".join(violations)


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def circles(graph):
    """The sets of modules that import one another, directly or through others (the strongly
    connected components of more than one module)."""
    reach = {module: reachable(graph, module) for module in graph}
    found = []
    for module in sorted(graph):
        circle = {other for other in reach[module] if module in reach[other]}
        if len(circle) > 1 and circle not in found:
            found.append(circle)
    return found


def test_the_circle_finder_finds_circles_through_other_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert circles(graph) == [{"a", "b", "c"}]


def test_no_modules_import_each_other_in_a_circle_but_tensor_and_ops():
    # Direct imports only: a package's __init__ running before its submodules is Python's doing, not a circle.
    graph = {module: IMPORTS[module] & set(MODULES) for module in MODULES}
    found = [sorted(circle) for circle in circles(graph) if circle not in ALLOWED_CIRCLES]
    assert not found, "modules that import each other: " + "; ".join(" <-> ".join(circle) for circle in found)


def test_no_source_file_is_longer_than_one_sitting():
    long = {str(path.relative_to(ROOT)): count for path in MODULES.values()
            if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines (split by concept): {long}"
