"""Gaussian-copula mutual information between multivariate X and Y (Ince et al. 2017; METHODS §5.8, B16).

Each column is copula-normalised over the frames of the sentence — average ranks (ties share their
mean rank) mapped through the standard normal quantile ``Φ⁻¹(rank / (T + 1))`` — and the mutual
information of the Gaussian with the joint sample covariance is

    I(X; Y) = ½ (log det Σ_X + log det Σ_Y − log det Σ_XY)        [reported in bits]

from Cholesky log-determinants. ``bias_correct=True`` (default) applies Ince et al.'s analytic
correction for the sample covariance (digamma terms), which can make the estimate slightly negative
when X and Y are independent; the population value lies in [0, ∞).

This is the MI between the whole feature sets, not the paper code's mean of p·q bivariate MIs.
Constant columns carry no information and are left out (a constant side gives NaN); the estimate needs
T − 1 ≥ (varying columns of X) + (varying columns of Y) and non-collinear columns, otherwise NaN.
"""

from __future__ import annotations

import math

import torch

from hearlike.metrics.rdm import rank_rows


def copula_normalise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, p) → copula-normal, column-centred (B, T, p) and the (B, p) mask of non-constant columns."""
    b, n, p = x.shape
    cols = x.transpose(1, 2).reshape(b * p, n)
    varying = cols.amax(dim=1) > cols.amin(dim=1)
    g = torch.special.ndtri(rank_rows(cols).average / (n + 1))
    g = torch.where(varying[:, None], g, 0.0)
    g = g - g.mean(dim=1, keepdim=True)
    return g.reshape(b, p, n).transpose(1, 2), varying.reshape(b, p)


def _covariance(g: torch.Tensor, varying: torch.Tensor) -> torch.Tensor:
    """Sample covariance; a constant column becomes an independent unit-variance dummy (log det += 0)."""
    c = g.transpose(1, 2) @ g / (g.shape[1] - 1)
    return c + torch.diag_embed((~varying).to(c.dtype))


def _half_logdet(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """½ log det via Cholesky, and whether the matrix was positive definite."""
    chol, info = torch.linalg.cholesky_ex(c)
    diag = torch.diagonal(chol, dim1=-2, dim2=-1)
    ok = (info == 0) & (diag > 0).all(dim=-1)
    return torch.log(diag.clamp(min=torch.finfo(c.dtype).tiny)).sum(dim=-1), ok


def _psi_cumsum(n_frames: int, n_max: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """c[k] = Σ_{j ≤ k} ψ((T − j)/2)/2, c[0] = 0: the entropy bias terms of a k-variate Gaussian."""
    j = torch.arange(1, n_max + 1, dtype=dtype, device=device)
    # arguments ≤ 0 only occur for k > T − 1, which the caller marks invalid
    terms = torch.special.digamma(((n_frames - j) / 2).clamp(min=0.5)) / 2
    return torch.cat([torch.zeros(1, dtype=dtype, device=device), torch.cumsum(terms, 0)])


def gcmi(x: torch.Tensor, y: torch.Tensor, *, bias_correct: bool = True) -> torch.Tensor:
    """(B, L) Gaussian-copula MI in bits between each X item (B, T, p) and each Y item (L, T, q)."""
    n = x.shape[1]
    gx, vx = copula_normalise(x)
    gy, vy = copula_normalise(y)
    cx, cy = _covariance(gx, vx), _covariance(gy, vy)
    hx, okx = _half_logdet(cx)
    hy, oky = _half_logdet(cy)
    cxy = torch.einsum("btp,ltq->blpq", gx, gy) / (n - 1)
    b, p, q, n_y = x.shape[0], x.shape[2], y.shape[2], y.shape[0]
    joint = torch.empty((b, n_y, p + q, p + q), dtype=x.dtype, device=x.device)
    joint[:, :, :p, :p] = cx[:, None]
    joint[:, :, p:, p:] = cy[None]
    joint[:, :, :p, p:] = cxy
    joint[:, :, p:, :p] = cxy.transpose(2, 3)
    hxy, okxy = _half_logdet(joint)
    mi = hx[:, None] + hy[None, :] - hxy
    nx, ny = vx.sum(dim=1), vy.sum(dim=1)
    n_joint = nx[:, None] + ny[None, :]
    if bias_correct:
        c = _psi_cumsum(n, p + q, x.dtype, x.device)
        mi = mi - c[nx][:, None] - c[ny][None, :] + c[n_joint]
    ok = okxy & okx[:, None] & oky[None, :] & (nx[:, None] > 0) & (ny[None, :] > 0) & (n_joint <= n - 1)
    return torch.where(ok, mi / math.log(2.0), torch.nan)
