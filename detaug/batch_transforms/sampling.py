"""Random draws for batch transforms, from a ``torch.Generator`` on any device.

``torch.distributions`` cannot take a generator, so the Beta law the mixer
needs is built here from gamma draws (vectorised Marsaglia-Tsang), with no
data-dependent loop and no host sync. Pairings are random cycles.

>>> g = torch.Generator().manual_seed(0)
>>> lam = sample_beta(2.0, 5.0, 20000, g, "cpu")
>>> bool(abs(lam.mean() - 2 / 7) < 0.01), bool(((lam > 0) & (lam < 1)).all())
(True, True)
>>> p = random_cycle(5, g, "cpu")
>>> sorted(p.tolist()), bool((p != torch.arange(5)).all())
([0, 1, 2, 3, 4], True)
"""

from __future__ import annotations

import math

import torch

__all__ = ["sample_gamma", "sample_beta", "random_cycle"]

# Marsaglia-Tsang gamma sampling: candidates drawn per value. Each is accepted
# with probability > 0.95, so all 16 failing has probability < 1e-20.
_GAMMA_CANDIDATES = 16


def sample_gamma(concentration: float, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n,) float32 draws of Gamma(concentration, 1) on ``device``, vectorised Marsaglia-Tsang.

    Draws ``_GAMMA_CANDIDATES`` proposals per value from ``generator`` and keeps
    the first accepted one. Concentrations below 1 use
    ``Gamma(a) = Gamma(a + 1) * U ** (1 / a)``.
    """
    a = float(concentration)
    boost = a < 1.0
    d = (a + 1.0 if boost else a) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    k = _GAMMA_CANDIDATES
    x = torch.randn((n, k), generator=generator, device=device)
    u = torch.rand((n, k), generator=generator, device=device)
    v = (1.0 + c * x) ** 3
    ok = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-30)))
    first = torch.argmax(ok.to(torch.uint8), dim=1, keepdim=True)  # first accepted (0 if none: ~never)
    g = (d * v.clamp_min(0)).gather(1, first).squeeze(1)
    if boost:
        ub = torch.rand((n,), generator=generator, device=device)
        g = g * ub.clamp_min(1e-30) ** (1.0 / a)
    return g


def sample_beta(
    alpha: float, beta: float, n: int, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """(n,) float32 draws of Beta(alpha, beta) on ``device`` (``X / (X + Y)``, X and Y gamma)."""
    dev = torch.device(device)
    x = sample_gamma(alpha, n, generator, dev)
    y = sample_gamma(beta, n, generator, dev)
    return x / (x + y).clamp_min(1e-30)


def random_cycle(n: int, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """(n,) int64 partners forming one random cycle: ``perm[i] != i`` when n > 1 (one randperm draw).

    Image ``order[k]`` is paired with ``order[k + 1]`` for a random order.
    """
    dev = torch.device(device)
    order = torch.randperm(n, generator=generator, device=dev)
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm
