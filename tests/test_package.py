"""What the package promises about itself: what `import tftriplet` loads, what the wheel
installs, and that no module reaches into another module's private names."""

import ast
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tftriplet
import tftriplet_conformance

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [Path(tftriplet.__file__).parent, Path(tftriplet_conformance.__file__).parent]


def _modules_after(statement):
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_tftriplet_loads_nothing_beyond_keras():
    keras_only = _modules_after("import keras")
    with_tftriplet = _modules_after("import tftriplet")
    extra = {m for m in with_tftriplet - keras_only if not m.startswith("tftriplet.")}
    assert extra == {"tftriplet"}, sorted(extra)
    ours = {m for m in with_tftriplet if m.startswith("tftriplet")}
    assert not any(m.startswith("tftriplet.cli") for m in ours), sorted(ours)
    assert "tftriplet_conformance" not in ours


def test_the_distribution_installs_only_the_project_namespace():
    top_level = {
        name
        for name, dists in importlib.metadata.packages_distributions().items()
        if "tftriplet" in dists
    }
    assert top_level <= {"tftriplet", "tftriplet_conformance"}, top_level
    assert "conformance" not in top_level


def test_the_contract_ships_with_the_runner():
    contract = tftriplet_conformance.CONTRACT_DIR
    assert (contract / "schema.json").is_file()
    assert (contract / "c" / "triplet.c").is_file()
    assert (contract / "c" / "seed_program.c").is_file()
    assert len(list(tftriplet_conformance.FIXTURES_DIR.glob("*.json"))) >= 70


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
