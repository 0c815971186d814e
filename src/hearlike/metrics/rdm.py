"""Representational dissimilarity matrices (RDMs) over the frames of one sentence, and their ranks.

An RDM vector is the upper triangle (i < j, row-major: the order of ``scipy.spatial.distance.squareform``)
of the T × T matrix of dissimilarities between frame patterns:

* ``p > 1`` features: correlation distance ``1 − r(x_i, x_j)`` between the two frames' feature patterns
  (each frame centred over its features; range [0, 2]); a frame whose features are all equal has no
  correlation, so its RDM is NaN and every metric using it is NaN;
* ``p == 1``: ``|x_i − x_j|`` (a correlation between two scalars does not exist).

Correlation distances are rounded to 12 decimals so that exact ties (all distances are 0 or 2 when
p = 2) stay ties on every device; ``|x_i − x_j|`` is computed exactly and needs no rounding.

:func:`prepare_rdm_side` builds and ranks each RDM exactly once and stores what the RSA metrics need
(standardised average ranks, standardised values, dense ranks with tie counts), so that one side can be
reused against many others — model layers across subjects, electrodes across models.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch

from hearlike.metrics import _backend

RSA_METHODS = ("spearman", "pearson", "kendall")
# Correlation distances are rounded to this many decimals (their rounding error is ~1e-16).
CORRELATION_DECIMALS = 12


def rdm_vectors(x: torch.Tensor) -> torch.Tensor:
    """(B, T, p) frames × features → (B, T(T−1)/2) RDM vectors (float64, same device)."""
    if x.shape[2] == 1:
        v = x[:, :, 0]
        return upper_triangle(v, diff=True).abs_()
    centred = x - x.mean(dim=2, keepdim=True)
    norm = torch.linalg.vector_norm(centred, dim=2, keepdim=True)
    # a constant frame pattern has no correlation with anything: make it NaN rather than dividing by ~0
    unit = centred / torch.where(norm > 0, norm, torch.nan)
    gram = unit @ unit.transpose(1, 2)
    # Rounding makes ties that exist in exact arithmetic exact (with p = 2 every distance is 0 or 2) instead
    # of leaving their order to rounding error, which differs between implementations and devices.
    return torch.round(1.0 - upper_triangle(gram), decimals=CORRELATION_DECIMALS)


def upper_triangle(m: torch.Tensor, *, diff: bool = False) -> torch.Tensor:
    """Entries i < j of each (T, T) matrix of a (B, T, T) batch in row-major (squareform) order.

    With ``diff=True``, ``m`` is a (B, T) signal and the entries are ``m[:, j] − m[:, i]`` (no T × T
    intermediate on CPU). On CPU the rows are copied slice by slice, several times faster than a gather.
    """
    if m.device.type != "cpu":
        return _upper_triangle_gather(m[:, None, :] - m[:, :, None] if diff else m)
    n = m.shape[-1]
    src = m.numpy()
    out = np.empty((m.shape[0], n * (n - 1) // 2))
    pos = 0
    for i in range(n - 1):
        k = n - 1 - i
        if diff:
            np.subtract(src[:, i + 1 :], src[:, i : i + 1], out=out[:, pos : pos + k])
        else:
            out[:, pos : pos + k] = src[:, i, i + 1 :]
        pos += k
    return torch.from_numpy(out)


def _upper_triangle_gather(m: torch.Tensor) -> torch.Tensor:
    """Device-agnostic twin of :func:`upper_triangle` (one gather; used on CUDA)."""
    n = m.shape[-1]
    iu = torch.triu_indices(n, n, offset=1, device=m.device)
    return m[:, iu[0], iu[1]]


def rdm_vector(x: np.ndarray) -> np.ndarray:
    """One sentence: (T, p) or (T,) → the T(T−1)/2 RDM vector in squareform order."""
    t = torch.from_numpy(_backend.as_single(x, "X"))
    return rdm_vectors(t)[0].numpy()


@dataclass(frozen=True)
class RankInfo:
    """Ranks of each row of a (B, n) matrix."""

    average: torch.Tensor | None  # (B, n) float64, 1-based, ties get their mean rank (scipy 'average')
    standardised: (
        torch.Tensor | None
    )  # (B, n) average ranks centred and scaled to unit norm (NaN if constant)
    dense: torch.Tensor | None  # (B, n) int64, 0-based dense ranks (ties share one)
    n_levels: torch.Tensor | None  # (B,) number of distinct values
    tie_pairs: torch.Tensor | None  # (B,) number of pairs of entries with equal values


def rank_rows(
    values: torch.Tensor, *, average: bool = True, standardise: bool = False, dense: bool = False
) -> RankInfo:
    """Ranks of every row from one sort per row: average ranks, their standardised form, dense ranks.

    On CPU numpy's SIMD sorts do the work (several times faster than ``torch.sort`` there); on CUDA
    everything stays in torch. Rows containing non-finite values get NaN average/standardised ranks.
    """
    if values.device.type == "cpu":
        return _rank_rows_numpy(values, average, standardise, dense)
    return _rank_rows_torch(values, average, standardise, dense)


def _rank_rows_numpy(values: torch.Tensor, average: bool, standardise: bool, dense: bool) -> RankInfo:
    v = values.numpy()
    b, n = v.shape
    idx = np.argsort(v, axis=1)
    s = np.sort(v, axis=1)  # cheaper than gathering v along idx
    # numpy sorts −inf first and +inf, NaN last: the two ends tell whether a row is all finite
    bad = ~(np.isfinite(s[:, 0]) & np.isfinite(s[:, -1])) if n else np.zeros(b, dtype=bool)
    new = np.ones((b, n), dtype=bool)  # new[k]: sorted entry k starts a run of equal values
    np.not_equal(s[:, 1:], s[:, :-1], out=new[:, 1:])
    del s
    pos = np.arange(n, dtype=np.int64)
    tied = ~new.all(axis=1)
    any_tied = bool(tied.any())
    # rows without ties share one sorted-rank row (kept as a single broadcast row until scattered);
    # only tied rows need run starts and ends
    avg_sorted: np.ndarray = (pos + 1.0)[None, :]
    start: np.ndarray = pos[None, :]
    if any_tied:
        nt = new[tied]
        start_t = np.maximum.accumulate(np.where(nt, pos, 0), axis=1)
        last = np.ones_like(nt)
        last[:, :-1] = nt[:, 1:]
        end_t = np.minimum.accumulate(np.where(last, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
        avg_sorted = np.repeat(avg_sorted, b, axis=0)
        start = np.repeat(start, b, axis=0)
        avg_sorted[tied] = (start_t + end_t) / 2.0 + 1.0
        start[tied] = start_t
    index = torch.from_numpy(idx)

    def scatter(sorted_values: np.ndarray) -> np.ndarray:
        # torch's scatter is faster than np.put_along_axis on CPU; a single row is expanded, not copied
        src = torch.from_numpy(np.require(sorted_values, requirements=["C", "W"]))
        out = torch.empty((b, n), dtype=src.dtype).scatter_(1, index, src.expand(b, n)).numpy()
        if out.dtype.kind == "f" and bad.any():
            out[bad] = np.nan
        return out

    out_avg = out_std = dense_ranks = n_levels = tie_pairs = None
    if average:
        out_avg = scatter(avg_sorted)
    if standardise:
        centred = avg_sorted - (n + 1) / 2.0  # the mean of average ranks is exactly (n + 1)/2
        norm = np.full(centred.shape[0], np.sqrt(n * (n * n - 1) / 12.0))
        if any_tied:
            norm[tied] = np.sqrt(np.einsum("ij,ij->i", centred[tied], centred[tied]))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(norm > 0, 1.0 / norm, np.nan)
        out_std = scatter(centred * scale[:, None])
    if dense:
        group = np.cumsum(new, axis=1, dtype=np.int64) - 1
        dense_ranks = scatter(group)
        n_levels = group[:, -1] + 1 if n else np.zeros(b, np.int64)
        # each entry pairs with the earlier members of its run: Σ_runs t(t−1)/2
        tie_pairs = np.broadcast_to((pos - start).sum(axis=1), (b,)).copy()
    arrays = (out_avg, out_std, dense_ranks, n_levels, tie_pairs)
    return RankInfo(*(None if a is None else torch.from_numpy(a) for a in arrays))


def _rank_rows_torch(values: torch.Tensor, average: bool, standardise: bool, dense: bool) -> RankInfo:
    bad = ~torch.isfinite(values).all(dim=1)
    v = torch.where(torch.isfinite(values), values, torch.zeros((), dtype=values.dtype, device=values.device))
    b, n = v.shape
    s, idx = torch.sort(v, dim=1)
    new = torch.ones((b, n), dtype=torch.bool, device=v.device)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    pos = torch.arange(n, device=v.device).expand(b, n)
    start = torch.cummax(torch.where(new, pos, 0), dim=1).values
    last = torch.ones_like(new)
    last[:, :-1] = new[:, 1:]
    end = torch.cummin(torch.where(last, pos, n - 1).flip(1), dim=1).values.flip(1)
    avg_sorted = (start + end).to(torch.float64) / 2.0 + 1.0
    out_avg = out_std = dense_ranks = n_levels = tie_pairs = None
    if average:
        out_avg = torch.empty((b, n), dtype=torch.float64, device=v.device).scatter_(1, idx, avg_sorted)
        out_avg[bad] = torch.nan
    if standardise:
        centred = avg_sorted - (n + 1) / 2.0
        norm = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
        scale = torch.where((norm > 0) & ~bad[:, None], 1.0 / norm, torch.nan)
        out_std = torch.empty((b, n), dtype=torch.float64, device=v.device).scatter_(1, idx, centred * scale)
    if dense:
        group = torch.cumsum(new, dim=1) - 1
        dense_ranks = torch.empty((b, n), dtype=torch.int64, device=v.device).scatter_(1, idx, group)
        n_levels = group[:, -1] + 1 if n else torch.zeros(b, dtype=torch.int64, device=v.device)
        tie_pairs = (pos - start).sum(dim=1)
    return RankInfo(out_avg, out_std, dense_ranks, n_levels, tie_pairs)


def standardise_rows(v: torch.Tensor) -> torch.Tensor:
    """Centre each row and scale it to unit norm; a row without variance becomes NaN.

    The dot product of two standardised rows is their Pearson correlation, so a whole (B × L) block of
    correlations is one matrix product.
    """
    centred = v - v.mean(dim=1, keepdim=True)
    norm = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
    # relative threshold: a row of equal values can leave ~1e-16 rounding residue after centring
    scale = v.abs().amax(dim=1, keepdim=True) * np.sqrt(v.shape[1]) * 1e-13
    ok = norm > scale
    return centred / torch.where(ok, norm, torch.nan)


@dataclass(frozen=True)
class PreparedRDMs:
    """One side (B items of one sentence) ready for RSA against any other prepared side of equal T.

    ``spearman``/``pearson`` hold standardised (ranked) RDM vectors, ``dense_ranks``/``n_levels``/
    ``tie_pairs`` the dense ranks used by Kendall's τ-b; fields of methods not requested are None.
    """

    n_frames: int
    n_pairs: int
    valid: torch.Tensor
    spearman: torch.Tensor | None
    pearson: torch.Tensor | None
    dense_ranks: torch.Tensor | None
    n_levels: torch.Tensor | None
    tie_pairs: torch.Tensor | None

    @property
    def n_items(self) -> int:
        """Number of RDMs (electrodes, layers, ...) on this side."""
        return int(self.valid.shape[0])

    @property
    def methods(self) -> tuple[str, ...]:
        """RSA methods this side was prepared for."""
        have = {"spearman": self.spearman, "pearson": self.pearson, "kendall": self.dense_ranks}
        return tuple(m for m, v in have.items() if v is not None)


def prepare_rdm_side(
    x: np.ndarray | torch.Tensor,
    *,
    methods: Collection[str] = ("spearman",),
    device: str | torch.device = "cpu",
) -> PreparedRDMs:
    """Build the RDM of each of the B (T × p) items of ``x`` (B, T, p) and rank it once.

    Items whose RDM is degenerate (T < 3, non-finite values, a constant RDM) are marked invalid and give
    NaN in :func:`hearlike.metrics.rsa.rsa_from_prepared`.
    """
    unknown = set(methods) - set(RSA_METHODS)
    if unknown:
        raise ValueError(f"unknown RSA methods {sorted(unknown)}; choose from {RSA_METHODS}")
    dev = _backend.resolve_device(device)
    with _backend.exact_numerics(dev):
        xt = _backend.as_batch(x, dev, "X")
        n_frames = xt.shape[1]
        v = rdm_vectors(xt)
        n_pairs = v.shape[1]
        valid = _backend.finite_rows(v) & (n_frames >= 3)
        spearman = pearson = dense_ranks = n_levels = tie_pairs = None
        if "spearman" in methods or "kendall" in methods:
            ranks = rank_rows(v, average=False, standardise="spearman" in methods, dense="kendall" in methods)
            spearman = ranks.standardised
            dense_ranks, n_levels, tie_pairs = ranks.dense, ranks.n_levels, ranks.tie_pairs
            if n_levels is not None:
                valid &= n_levels > 1  # a constant RDM: every correlation is 0/0
        if "pearson" in methods:
            pearson = standardise_rows(v)
        for std in (spearman, pearson):
            if std is not None and n_pairs:
                valid &= ~torch.isnan(std[:, 0])  # standardised rows are NaN as a whole or not at all
        invalid = ~valid
        if bool(invalid.any()):
            for std in (spearman, pearson):
                if std is not None:
                    std[invalid] = torch.nan
    return PreparedRDMs(n_frames, n_pairs, valid, spearman, pearson, dense_ranks, n_levels, tie_pairs)
