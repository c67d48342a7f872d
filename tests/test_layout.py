"""The house rule (BUILD.md, "Layout"): rooms in one order; a module imports only
from its own room and the rooms before it.

Every import between the package's modules is read from the source with
``ast`` (the ones inside functions too), so the rule holds whichever code
path runs first.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "vdsr_tf"
# Lowest first: a module may import from its own room and the rooms before it.
ROOMS = (
    "config",
    "ops",
    "io",
    "models",
    "data",
    "evaluation",
    "export",
    "inference",
    "training",
    "app",
    "cli",
)


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path, modules):
    """``(line, imported module)`` for every import of a ``vdsr_tf`` module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("vdsr_tf")]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and (node.module.split(".")[0] == "vdsr_tf")
        ):
            for alias in node.names:  # "from vdsr_tf.ops import tiling" imports a module
                sub = f"{node.module}.{alias.name}"
                found.append((node.lineno, sub if sub in modules else node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; spell vdsr_tf.…")
    return found


def _room(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_lives_in_a_room():
    loose = [m for m in _modules() if m != "vdsr_tf" and _room(m) not in ROOMS]
    assert not loose, f"modules outside the rooms {ROOMS}: {loose}"


def test_no_module_imports_from_a_room_after_its_own():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        if module == "vdsr_tf":
            continue
        rank = ROOMS.index(_room(module))
        for line, imported in _imports(path, modules):
            room = _room(imported)
            if room is not None and ROOMS.index(room) > rank:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} ({_room(module)}) "
                    f"imports {imported} ({room})"
                )
    assert not upward, "imports from a room listed after the importer's:\n" + "\n".join(upward)


def test_the_package_index_imports_nothing_eagerly():
    # vdsr_tf/__init__.py names its exports as strings (PEP 562), so that any
    # module may "import vdsr_tf" (for __version__) without a circle.
    assert _imports(PACKAGE / "__init__.py", _modules()) == []


def test_no_circle_between_modules():
    modules = _modules()
    graph = {
        m: {i for _, i in _imports(p, modules) if i in modules and i != m and i != "vdsr_tf"}
        for m, p in modules.items()
    }
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("circle: " + " -> ".join(path[path.index(m) :] + [m]))
        if m in done:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from vdsr_tf.training.trainer import train\n", "vdsr_tf.training.trainer"),
        ("def f():\n    from vdsr_tf.training import trainer\n", "vdsr_tf.training.trainer"),
        ("import vdsr_tf.training.trainer as t\n", "vdsr_tf.training.trainer"),
    ],
)
def test_the_reader_sees_every_import_form(tmp_path, source, expected):
    # The checks above are only as good as the reader: an import in any
    # of the three spellings, at any depth, is found.
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert _imports(path, _modules()) == [
        (source.count("\n", 0, source.index("import")) + 1, expected)
    ]
