"""The layers hold: envs < agents < distill < scripts, imports only point down, and no script
imports another or patches ``sys.path`` (DESIGN.md, "Layers and who may import whom")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"envs": 0, "agents": 1, "distill": 2}
SCRIPTS = sorted(ROOT.glob("scripts/**/*.py"))
SCRIPT_NAMES = {p.stem for p in SCRIPTS}


def imported_modules(source: str) -> list[str]:
    """Every module a source imports, at any depth (function-level imports included)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def violations(source: str, layer: str | None) -> list[str]:
    """What a file in ``layer`` (a package name, or None for a script) must not do."""
    bad = []
    for mod in imported_modules(source):
        top = mod.split(".")[0]
        if top == "scripts" or top in SCRIPT_NAMES:
            bad.append(f"imports the script {mod}")
        elif layer is not None and LAYERS.get(top, -1) > LAYERS[layer]:
            bad.append(f"imports {mod}, a layer above {layer}")
    if "sys.path" in source:
        bad.append("patches sys.path")
    return bad


def test_the_checker_finds_each_kind_of_wrong_import() -> None:
    assert violations("def f():\n    from distill.students import Student\n", "agents") == [
        "imports distill.students, a layer above agents"
    ]
    assert violations("import agents.policies\n", "envs") == ["imports agents.policies, a layer above envs"]
    assert violations("import replay\n", None) == ["imports the script replay"]
    assert violations("import sys\nsys.path.insert(0, '.')\n", None) == ["patches sys.path"]
    assert violations("import envs\nfrom agents import make_policy\n", "distill") == []


def test_library_imports_point_only_down() -> None:
    found = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            bad = violations(path.read_text(), layer)
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    assert found == {}


def test_scripts_never_import_each_other_nor_patch_sys_path() -> None:
    assert SCRIPTS, "no scripts found"
    found = {str(p.relative_to(ROOT)): violations(p.read_text(), None) for p in SCRIPTS}
    assert {k: v for k, v in found.items() if v} == {}
