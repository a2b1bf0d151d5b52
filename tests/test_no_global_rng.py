"""The no-global-RNG rule, for what ruff's NPY002/TID251 cannot see.

ruff bans `random`, legacy `np.random.*` functions and torch's global seeding.
This test adds: torch sampling calls must pass `generator=`, and library code
never builds an unseeded numpy Generator.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_SAMPLERS = {
    "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
    "normal", "bernoulli", "multinomial", "poisson",
}
TENSOR_SAMPLERS = {"uniform_", "normal_", "bernoulli_", "random_", "exponential_", "geometric_", "cauchy_", "log_normal_"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, base = node.func.attr, node.func.value
        kw = {k.arg for k in node.keywords}
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if isinstance(base, ast.Name) and base.id == "torch" and attr in TORCH_SAMPLERS and "generator" not in kw:
            found.append(f"{where}: torch.{attr} without generator=")
        if attr in TENSOR_SAMPLERS and "generator" not in kw:
            found.append(f"{where}: .{attr} without generator=")
        if attr == "default_rng" and not node.args and not node.keywords and "detaug" in path.parts:
            found.append(f"{where}: unseeded default_rng() in library code")
    return found


def test_no_global_rng_in_library_tools_and_examples():
    files = [p for d in ("detaug", "tools", "examples") for p in (ROOT / d).rglob("*.py")]
    assert files
    bad = [v for p in files for v in _violations(p)]
    assert not bad, "\n".join(bad)


def test_the_checker_catches_violations(tmp_path):
    d = ROOT / "detaug"
    p = d / "_rng_probe_tmp.py"
    try:
        p.write_text("import torch, numpy as np\nx = torch.rand(3)\ng = np.random.default_rng()\n")
        assert len(_violations(p)) == 2
    finally:
        p.unlink()
