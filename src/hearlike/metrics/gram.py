"""Frame × frame matrices (Gram, kernel, distance) and their centrings, shared by the kernel metrics.

Every kernel-type metric of one sentence is a function of Frobenius inner products ⟨M_x, M_y⟩ of one
T × T matrix per side (METHODS §5.4–5.7): ``cka_*``, ``hsic_*``, ``rv*`` and ``dcor*`` only differ in
how that matrix is built and how the inner products are normalised. A :class:`GramMetric` says both, so
the battery builds each side's matrices once per sentence and gets all (X item, Y item) inner products
as one matrix product ``(B, T²) @ (T², L)``.

Centring subtracts row and column means (O(T²)), which equals ``H K H`` with ``H = I − 11ᵀ/T`` without
the two O(T³) products.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
import torch

SideFn = Callable[[torch.Tensor], torch.Tensor]
FinishFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class GramMetric:
    """A kernel-type metric: ``finish(⟨M_x, M_y⟩, ⟨M_x, M_x⟩, ⟨M_y, M_y⟩, T)`` with ``M = side(data)``.

    ``side_key`` identifies the side transform (with its settings) so that metrics sharing it share
    the matrices; ``min_frames`` is the smallest T for which the estimator is defined.
    """

    side: SideFn
    side_key: Hashable
    finish: FinishFn
    min_frames: int = 3


def column_centred(x: torch.Tensor) -> torch.Tensor:
    """Subtract each feature's mean over frames: (B, T, p)."""
    return x - x.mean(dim=1, keepdim=True)


def linear_gram(x: torch.Tensor) -> torch.Tensor:
    """``X_c X_cᵀ`` of the column-centred data: (B, T, T)."""
    xc = column_centred(x)
    return xc @ xc.transpose(1, 2)


def distances(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between frames, from exact differences (no ‖a‖²+‖b‖²−2ab cancellation)."""
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")


def median_sq_distance(d2: torch.Tensor) -> torch.Tensor:
    """(B,) median of the positive squared distances over frame pairs i < j (NaN if there are none).

    numpy convention: the mean of the two middle values for an even count (``torch.median`` would take
    the lower one).
    """
    n = d2.shape[1]
    iu = torch.triu_indices(n, n, offset=1, device=d2.device)
    v = d2[:, iu[0], iu[1]]
    v = torch.where(v > 0, v, torch.nan)
    if v.shape[1] == 0:
        return torch.full((v.shape[0],), torch.nan, dtype=v.dtype, device=v.device)
    if v.device.type == "cpu":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are the degenerate case
            return torch.from_numpy(np.nanmedian(v.numpy(), axis=1))
    return _nanmedian_sorted(v)


def _nanmedian_sorted(v: torch.Tensor) -> torch.Tensor:
    """Row medians ignoring NaN (numpy convention) by sorting; the torch twin used on CUDA."""
    s = torch.sort(v, dim=1).values  # NaN sorts last
    k = (~torch.isnan(v)).sum(dim=1)
    lo = ((k - 1).clamp(min=0) // 2)[:, None]
    hi = (k // 2).clamp(max=v.shape[1] - 1)[:, None]
    med = (s.gather(1, lo) + s.gather(1, hi))[:, 0] / 2
    return torch.where(k > 0, med, torch.nan)


def rbf_kernel(x: torch.Tensor, bandwidth: float | str = "median") -> torch.Tensor:
    """Gaussian kernel ``exp(−‖x_i − x_j‖² / (2σ²))`` with the median heuristic.

    ``σ² = median{‖x_i − x_j‖² > 0, i < j}`` (the paper code's σ = sqrt(median D²)); a float
    ``bandwidth`` multiplies that σ. No positive distance (all frames identical) gives a NaN kernel.
    """
    d2 = distances(x).square_()
    sigma2 = median_sq_distance(d2)
    if bandwidth != "median":
        mult = float(bandwidth)
        if not mult > 0:
            raise ValueError(f"bandwidth multiplier must be positive; got {bandwidth!r}")
        sigma2 = sigma2 * mult**2
    return torch.exp(-d2 / (2.0 * sigma2[:, None, None]))


def double_centred(k: torch.Tensor) -> torch.Tensor:
    """``H K H`` for symmetric (B, T, T) ``K``, by subtracting row and column means."""
    row = k.mean(dim=2, keepdim=True)
    grand = row.mean(dim=1, keepdim=True)
    return k - row - row.transpose(1, 2) + grand


def u_centred(k: torch.Tensor) -> torch.Tensor:
    """U-centring (Székely & Rizzo 2014) of symmetric (B, T, T) ``K``; needs T ≥ 4.

    With the diagonal set to zero, ``Ũ_ij = K_ij − r_i/(T−2) − r_j/(T−2) + s/((T−1)(T−2))`` off the
    diagonal (r = row sums, s = total) and 0 on it; ``⟨Ũ_K, Ũ_L⟩/(T(T−3))`` is Song et al.'s (2012)
    unbiased HSIC.
    """
    n = k.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=k.device)
    k = k.masked_fill(eye, 0.0)
    row = k.sum(dim=2, keepdim=True)
    total = row.sum(dim=1, keepdim=True)
    u = k - row / (n - 2) - row.transpose(1, 2) / (n - 2) + total / ((n - 1) * (n - 2))
    return u.masked_fill_(eye, 0.0)


def inner_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) Frobenius inner products between the matrices of two batches."""
    return a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T


def self_inner(a: torch.Tensor) -> torch.Tensor:
    """(A,) squared Frobenius norms."""
    flat = a.reshape(a.shape[0], -1)
    return (flat * flat).sum(dim=1)


def cosine(cross: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``⟨a, b⟩ / sqrt(⟨a, a⟩⟨b, b⟩)``; NaN where a side has no (positive) norm."""
    del n_frames
    denom = torch.sqrt(sa.clamp(min=0)[:, None] * sb.clamp(min=0)[None, :])
    ok = (sa[:, None] > 0) & (sb[None, :] > 0) & torch.isfinite(denom)
    # clamp: rounding can put identical sides at 1 + 1e-16
    return torch.where(ok, cross / torch.where(ok, denom, 1.0), torch.nan).clamp_(-1.0, 1.0)
