"""What the package promises about itself: what `import tftriplet` loads and runs, what the
wheel installs, which of its packages imports which, and that no module reaches into another
module's private names."""

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tftriplet
import tftriplet_cli
import tftriplet_conformance

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    Path(tftriplet.__file__).parent,
    Path(tftriplet_cli.__file__).parent,
    Path(tftriplet_conformance.__file__).parent,
]


def _state_after(statement):
    """`(modules loaded, TF_CPP_MIN_LOG_LEVEL)` after `statement` in a fresh interpreter
    whose environment does not set `TF_CPP_MIN_LOG_LEVEL`."""
    code = (
        f"import json, os, sys\n{statement}\n"
        "print(json.dumps([sorted(sys.modules), os.environ.get('TF_CPP_MIN_LOG_LEVEL')]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
        check=True,
    )
    modules, level = json.loads(done.stdout.strip().splitlines()[-1])
    return set(modules), level


def _modules_after(statement):
    return _state_after(statement)[0]


def test_import_tftriplet_loads_nothing_beyond_keras_and_runs_no_command_line_code():
    keras_only, keras_level = _state_after("import keras")
    # As the console script starts (argv[0] is the command): nothing may look at it.
    with_tftriplet, level = _state_after("sys.argv[0] = '/usr/bin/tftriplet'\nimport tftriplet")
    extra = {m for m in with_tftriplet - keras_only if not m.startswith("tftriplet.")}
    assert extra == {"tftriplet"}, sorted(extra)
    ours = {m for m in with_tftriplet if m.startswith("tftriplet")}
    command_line = {m for m in ours if m.startswith(("tftriplet_cli", "tftriplet.cli"))}
    assert command_line == set(), sorted(command_line)
    assert not any(m.rsplit(".", 1)[-1] == "_startup" for m in ours), sorted(ours)
    assert "tftriplet_conformance" not in ours
    # The command's quiet environment (TF_CPP_MIN_LOG_LEVEL=3) is not set by the library:
    # the variable is as `import keras` leaves it.
    assert level == keras_level


def test_the_command_lines_entry_loads_the_standard_library_only():
    # What lets the command drop the framework's start-up lines: its entry point (the
    # console script imports `tftriplet_cli`) imports no framework before `main` runs.
    before = _modules_after("pass")
    loaded = _modules_after("import tftriplet_cli, tftriplet_cli._startup")
    outside = {
        m for m in loaded - before
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "tftriplet_cli"
    }
    assert outside == set(), sorted(outside)


def test_the_distribution_installs_only_the_project_namespace():
    top_level = {
        name
        for name, dists in importlib.metadata.packages_distributions().items()
        if "tftriplet" in dists
    }
    # the library, its command line (a package of its own: tftriplet_cli/__init__.py says
    # why), and the conformance suite
    assert top_level <= {"tftriplet", "tftriplet_cli", "tftriplet_conformance"}, top_level
    assert "conformance" not in top_level


def test_the_wheel_lists_every_package_of_the_checkout():
    # setuptools installs the packages pyproject.toml lists, not their subpackages.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package.name).rglob("__init__.py")
    }
    assert found - listed == set()


def test_the_contract_ships_with_the_runner():
    contract = tftriplet_conformance.CONTRACT_DIR
    assert (contract / "schema.json").is_file()
    assert (contract / "c" / "triplet.c").is_file()
    assert (contract / "c" / "seed_program.c").is_file()
    assert len(list(tftriplet_conformance.FIXTURES_DIR.glob("*.json"))) >= 70


def _imported_modules(path):
    """Every module the file imports by absolute name, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


# Which package may import which: the conformance suite tests the library and the command
# line uses both, so the library imports neither of them and the suite never imports the
# command line. `python -m tftriplet` (tftriplet/__main__.py) starts the command; no import
# of the library runs it.
FORBIDDEN = {
    "tftriplet": ("tftriplet_cli", "tftriplet_conformance"),
    "tftriplet_conformance": ("tftriplet_cli",),
}
STARTS_THE_COMMAND = {"tftriplet/__main__.py"}


def _forbidden_imports(package, forbidden):
    """`{file: sorted modules}` of the package's files that import a forbidden package."""
    offenders = {}
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package.parent).as_posix()
        bad = {m for m in _imported_modules(path) if m.split(".")[0] in forbidden}
        if bad and name not in STARTS_THE_COMMAND:
            offenders[name] = sorted(bad)
    return offenders


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_packages_import_each_other_one_way_only(package):
    directory = next(p for p in PACKAGES if p.name == package)
    assert _forbidden_imports(directory, FORBIDDEN[package]) == {}


def test_the_import_direction_check_sees_a_lazy_import(tmp_path):
    package = tmp_path / "tftriplet"
    package.mkdir()
    (package / "module.py").write_text(
        "import os\n\ndef f():\n    from tftriplet_conformance.glibc_rand import GlibcRand\n"
    )
    (package / "__main__.py").write_text("from tftriplet_cli import main\n")
    assert _forbidden_imports(package, FORBIDDEN["tftriplet"]) == {
        "tftriplet/module.py": ["tftriplet_conformance.glibc_rand"]
    }


def _private_imports(path):
    """``(module, name)`` for every ``from module import _name`` in the file."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, a.name) for a in node.names if a.name.startswith("_")]
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_module_imports_another_modules_private_names(package):
    offenders = {
        str(path.relative_to(package.parent)): names
        for path in sorted(package.rglob("*.py"))
        if (names := [n for n in _private_imports(path) if n[1] != "__future__"])
    }
    assert offenders == {}


def test_the_private_import_check_sees_one(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("from tftriplet.losses.base import _hidden\nfrom os import path\n")
    assert _private_imports(path) == [("tftriplet.losses.base", "_hidden")]
