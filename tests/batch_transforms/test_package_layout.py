"""The batch stage's layout: the slow references stay out of production code; modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import detaug

PKG = Path(detaug.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_no_production_module_imports_the_references():
    users = [p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
             if p.name != "reference.py" and "detaug.batch_transforms.reference" in _imports(p)]
    assert not users


def test_batch_transform_modules_are_small_and_documented():
    for p in (PKG / "batch_transforms").glob("*.py"):
        text = p.read_text(encoding="utf-8")
        assert len(text.splitlines()) < 450, p.name
        assert ast.get_docstring(ast.parse(text)), p.name


def test_the_old_top_level_modules_are_gone():
    assert not (PKG / "mixer.py").exists() and not (PKG / "batch_hsv.py").exists()
    assert detaug.BatchMixer.__module__ == "detaug.batch_transforms.mixer"
    assert detaug.BatchHSV.__module__ == "detaug.batch_transforms.hsv"
