"""The package's shape: layers import only downwards, no cycles, no module over 450 lines.

Reads the source with ``ast`` (nothing is imported), so the test also holds
for modules whose optional peers (Ultralytics) are not installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "detaug"
MAX_LINES = 450

# Layer of every module, lowest first (docs/ARCHITECTURE.md draws the same picture).
# A module may import modules of its own layer or below; never above.
LAYERS = [
    ("boxes", "polygons", "transforms.limits", "sampler", "allocator"),
    ("geometry", "sample"),
    ("canvas", "io", "io.*"),
    ("transforms", "transforms.*"),
    ("plan", "paint", "config"),
    ("mix_dataset", "data"),
    ("batch",),
    ("batch_transforms", "batch_transforms.*", "loss"),
    ("integrations", "integrations.*"),
    ("viz",),
]


def modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def layer_of(name: str) -> int:
    for k, group in enumerate(LAYERS):
        for pat in group:
            if name == pat or (pat.endswith(".*") and name.startswith(pat[:-1])):
                return k
    raise AssertionError(f"detaug.{name} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md")


def imports(path: Path, known: set[str]) -> set[str]:
    """detaug modules imported by ``path`` (``from detaug import geometry`` counts as detaug.geometry,
    ``from detaug.pkg import sub`` as detaug.pkg.sub when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mod = node.module
            if mod != "detaug" and not mod.startswith("detaug."):
                continue
            pkg = mod[len("detaug."):] if mod != "detaug" else ""
            for a in node.names:  # `from detaug.pkg import sub` imports the submodule pkg.sub
                sub = f"{pkg}.{a.name}" if pkg else a.name
                if sub in known:
                    out.add(sub)
                elif pkg:
                    out.add(pkg)
        elif isinstance(node, ast.Import):
            out |= {a.name[len("detaug."):] for a in node.names if a.name.startswith("detaug.")}
    return out


MODULES = modules()
GRAPH = {name: imports(path, set(MODULES)) - {name} for name, path in MODULES.items() if name}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_only_downwards(name):
    mine = layer_of(name)
    up = sorted(d for d in GRAPH[name] if layer_of(d) > mine)
    assert not up, f"detaug.{name} (layer {mine}) imports higher layers: {up}"


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for d in sorted(GRAPH.get(n, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, n, d]))
            if d not in state:
                visit(d, [*path, n])
        state[n] = 2

    for n in sorted(GRAPH):
        if n not in state:
            visit(n, [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"detaug/{MODULES[name].relative_to(ROOT)} has {lines} lines (max {MAX_LINES})"


def test_core_never_imports_tools_examples_or_ultralytics():
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for m in mods:
                    assert not m.startswith(("tools", "examples")), f"detaug.{name} imports {m}"
                    if m.startswith("ultralytics"):
                        assert name.startswith("integrations."), f"detaug.{name} imports {m}"
