"""The metric battery between one sentence's EEG features and its model features re-indexed in time.

Null distributions (circular shifts, frame permutations; :mod:`hearlike.nulls`) score X against
``Y[idx[b]]`` for B frame re-indexings ``idx[b]`` of the T frames. Re-indexing Y's frames by a
permutation π only permutes the rows and columns of every Y-side frame × frame matrix:

* RDMs: ``RDM(Y[π]) = RDM(Y)[π][:, π]`` entry for entry (each rounded correlation distance comes from
  the same two unit frame vectors, bit-identical on the platforms checked, so the tie structure is the
  same), and the multiset of RDM entries is unchanged, so its average ranks, standardised ranks, dense
  ranks and tie counts are the permuted ones;
* kernels, distance and Gram matrices: ``K(Y[π]) = K(Y)[π][:, π]``; the median-heuristic bandwidth is a
  function of the multiset of distances and does not change; double and U-centring commute with π, and
  Frobenius norms are invariant;
* Gaussian copula: the ranks of a permuted column are the permuted ranks, so only the cross-covariance
  ``gxᵀ gy[π]`` changes.

So each side is prepared once (X once, Y once per layer) with the engine's own functions
(:func:`~hearlike.metrics.rdm.prepare_rdm_side`, the :class:`~hearlike.metrics.gram.GramMetric` side
transforms, :func:`~hearlike.metrics.gcmi.copula_normalise`), and a draw costs one O(T²) gather and a dot
product (Kendall's τ-b: a gather and an O(n log n) inversion count of the Y ranks taken in the X-sorted
pair order, which is computed once; gcmi: one cross-product and a q × q Cholesky of the Schur
complement). The results equal :func:`~hearlike.metrics.battery.compute_battery`
on ``Y[:, idx[b]]`` up to floating-point summation order (~1e-15), with the same NaN for degenerate input.

Circular shifts (rows ``idx[b] = (arange(T) + k) % T``) are recognised and applied with contiguous block
copies from a 2 × 2 tiling of the matrix instead of an element gather (several times faster on CPU).
``device="cuda"`` keeps everything in torch on the GPU (gathers by advanced indexing; Kendall's inversion
count with the engine's torch twin).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hearlike.metrics import _backend, gram
from hearlike.metrics.battery import _RSA, _informative, resolve_battery
from hearlike.metrics.gcmi import _covariance, _half_logdet, _psi_cumsum, copula_normalise
from hearlike.metrics.rdm import PreparedRDMs, prepare_rdm_side
from hearlike.metrics.rsa import _count_inversions_torch, _tied_pairs_from_sorted, count_inversions

# float64 entries of one chunk of re-indexed T × T matrices (512 KiB: stays in cache for the dot product that
# follows; memory stays bounded for any B)
_SQUARE_BLOCK_ENTRIES = 1 << 16
# float64 entries of one chunk of permuted gcmi copulas (layers × draws × T × (p + q))
_GCMI_BLOCK_ENTRIES = 1 << 20
# Schur-complement pivots² (relative to the largest variance) below this are redone as in compute_battery:
# there log-determinants carry ~1e-15/pivot² relative error, which must stay below the 1e-9 agreement
_SCHUR_SAFE_PIVOT = 1e-5
# CPU tensors take the numpy routes (faster there); False runs the torch routes used on CUDA (for tests)
_NUMPY_ON_CPU = True


class _Reindexing:
    """B re-indexings of T frames, applied to T × T matrices: ``M[idx[b]][:, idx[b]]``, in chunks."""

    def __init__(self, idx: torch.Tensor) -> None:
        self.idx = idx
        n_draws, n_frames = idx.shape
        self.n_draws, self.n_frames = n_draws, n_frames
        # row b is a circular shift when it maps frame i to (i + k) % T with k = idx[b, 0]
        self.offsets = idx[:, 0].cpu().numpy()
        expected = (torch.arange(n_frames, device=idx.device)[None, :] + idx[:, :1]) % n_frames
        self.is_shift = (idx == expected).all(dim=1).cpu().numpy()
        self.step = max(1, _SQUARE_BLOCK_ENTRIES // max(1, n_frames * n_frames))

    def inverse(self) -> _Reindexing:
        """The inverse permutations (row b maps idx[b, i] back to i)."""
        n = self.n_frames
        inv = torch.empty_like(self.idx)
        src = torch.arange(n, device=self.idx.device).expand(self.n_draws, n)
        return _Reindexing(inv.scatter_(1, self.idx, src))

    def slices(self) -> Iterator[slice]:
        """Chunks of draws whose re-indexed T × T matrices fit in one block."""
        for start in range(0, self.n_draws, self.step):
            yield slice(start, min(self.n_draws, start + self.step))

    def squares(self, m: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
        """(draws, (b, T, T) re-indexed copies of ``m``) chunk by chunk."""
        if m.device.type != "cpu" or not _NUMPY_ON_CPU:
            for sl in self.slices():
                rows = self.idx[sl]
                yield sl, m[rows[:, :, None], rows[:, None, :]]
            return
        n = self.n_frames
        src = m.numpy()
        # a circular shift is one contiguous T × T window of the 2 × 2 tiling (block copies); any other
        # permutation is a row take then a column take, ~3× faster than one gather of T² flat indices
        tiled = np.tile(src, (2, 2)) if self.is_shift.any() else None
        idx = self.idx.numpy()
        for sl in self.slices():
            out = np.empty((sl.stop - sl.start, n, n), dtype=src.dtype)
            for j, b in enumerate(range(sl.start, sl.stop)):
                if tiled is not None and self.is_shift[b]:
                    k = self.offsets[b]
                    out[j] = tiled[k : k + n, k : k + n]
                else:
                    np.take(src.take(idx[b], axis=0), idx[b], axis=1, out=out[j])
            yield sl, torch.from_numpy(out)


def compute_battery_reindexed(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    idx: np.ndarray | torch.Tensor,
    *,
    metrics: Sequence[str],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Metrics between X (T, p) and each layer of Y (L, T, q) re-indexed by each row of idx → {name: (L, B)}.

    ``out[m][l, b] == compute_battery(X[None], Y[:, idx[b]], metrics=[m])[m][0, l]`` (to ~1e-15), with
    the same ``settings`` semantics and NaN for T < 3 and degenerate items. ``idx`` is (B, T), every row a
    permutation of ``range(T)`` (circular shifts, frame permutations), or (L, B, T) with its own
    re-indexings per layer. A 1-D X is one feature; a 2-D Y is (L, T) with one feature per layer (as in
    :func:`~hearlike.metrics.battery.compute_battery`).
    """
    resolved, gram_metrics = resolve_battery(metrics, settings)
    dev = _backend.resolve_device(device)
    with _backend.exact_numerics(dev):
        x = _backend.as_batch(_one_item(X), dev, "X")
        y = _backend.as_batch(Y, dev, "Y")
        n_frames, n_layers = x.shape[1], y.shape[0]
        if y.shape[1] != n_frames:
            raise ValueError(f"X and Y must have the same number of frames; got {n_frames} and {y.shape[1]}")
        index = _check_indices(idx, n_layers, n_frames, dev)
        n_draws = index.shape[-2]
        if n_frames < 3 or n_draws == 0:
            return {m: np.full((n_layers, n_draws), np.nan) for m in metrics}
        if index.ndim == 2:
            shared: _Reindexing | None = _Reindexing(index)
            per_layer = [shared] * n_layers
        else:
            shared = None
            per_layer = [_Reindexing(index[li]) for li in range(n_layers)]

        out: dict[str, torch.Tensor | np.ndarray] = {}
        rsa_methods = [_RSA[m] for m in metrics if m in _RSA]
        if rsa_methods:
            a_side = prepare_rdm_side(x, methods=rsa_methods, device=dev)
            b_side = prepare_rdm_side(y, methods=rsa_methods, device=dev)
            for m in metrics:
                if m in _RSA and _RSA[m] == "kendall":
                    out[m] = _kendall(a_side, b_side, per_layer)
                elif m in _RSA:
                    out[m] = _rsa_correlation(a_side, b_side, _RSA[m], shared, per_layer)

        if gram_metrics or "gcmi" in metrics:
            ok = _informative(x)[0] & _informative(y)  # (L,): permutation-invariant
            x0 = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
            y0 = torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        if gram_metrics:
            out.update(_gram(x0, y0, gram_metrics, ok, shared, per_layer))
        if "gcmi" in metrics:
            out["gcmi"] = _gcmi(x0, y0, ok, bool(resolved["gcmi"]["bias_correct"]), per_layer)
    return {m: out[m] if isinstance(out[m], np.ndarray) else _backend.to_numpy(out[m]) for m in metrics}


def _one_item(X: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(T, p) or (T,) → (1, T, p)."""
    t = X if isinstance(X, torch.Tensor) else np.asarray(X)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise ValueError(f"X must have shape (frames, features); got {tuple(t.shape)}")
    return t[None]


def _check_indices(
    idx: np.ndarray | torch.Tensor, n_layers: int, n_frames: int, dev: torch.device
) -> torch.Tensor:
    """idx as an int64 tensor on ``dev``; every row must be a permutation of range(T)."""
    t = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"idx must hold integer frame indices; got {t.dtype}")
    if t.ndim not in (2, 3) or t.shape[-1] != n_frames or (t.ndim == 3 and t.shape[0] != n_layers):
        raise ValueError(
            f"idx must have shape (B, {n_frames}) or ({n_layers}, B, {n_frames}); got {tuple(t.shape)}"
        )
    t = t.to(device=dev, dtype=torch.int64)
    if t.numel():
        # the identities used here (invariant medians, ranks, norms) hold for permutations only
        rows = torch.sort(t.reshape(-1, n_frames), dim=1).values
        if not torch.equal(rows, torch.arange(n_frames, device=dev).expand_as(rows)):
            raise ValueError("every row of idx must be a permutation of range(T)")
    return t


def _square(v: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(L, T(T−1)/2) upper-triangle vectors (squareform order) → (L, T, T) symmetric, zero diagonal."""
    iu = torch.triu_indices(n_frames, n_frames, offset=1, device=v.device)
    out = torch.zeros((v.shape[0], n_frames, n_frames), dtype=v.dtype, device=v.device)
    out[:, iu[0], iu[1]] = v
    return out + out.transpose(1, 2)  # exact: each entry is v + 0


def _permuted_cross(
    mx: torch.Tensor, my: torch.Tensor, shared: _Reindexing | None, per_layer: list[_Reindexing]
) -> torch.Tensor:
    """(L, B) ``Σ_ij mx[i, j] my[l, π_b(i), π_b(j)]`` for (T, T) mx and (L, T, T) my."""
    n_layers, n_draws = my.shape[0], per_layer[0].n_draws
    out = torch.empty((n_layers, n_draws), dtype=my.dtype, device=my.device)
    if shared is not None:
        # Σ_ij mx[i,j] my[π(i),π(j)] = ⟨mx[π⁻¹][:, π⁻¹], my⟩: re-index the single X matrix once per draw
        # and get all layers from one matrix product
        flat_y = my.reshape(n_layers, -1)
        for sl, block in shared.inverse().squares(mx):
            out[:, sl] = flat_y @ block.reshape(block.shape[0], -1).T
        return out
    flat_x = mx.reshape(-1)
    for li, reidx in enumerate(per_layer):
        for sl, block in reidx.squares(my[li]):
            out[li, sl] = block.reshape(block.shape[0], -1) @ flat_x
    return out


def _rsa_correlation(
    a: PreparedRDMs, b: PreparedRDMs, method: str, shared: _Reindexing | None, per_layer: list[_Reindexing]
) -> torch.Tensor:
    """Spearman or Pearson RSA: half the Frobenius product of the standardised squares (pairs count twice)."""
    va, vb = getattr(a, method), getattr(b, method)
    n = a.n_frames
    ex = _square(torch.nan_to_num(va), n)[0]
    sy = _square(torch.nan_to_num(vb), n)
    r = (_permuted_cross(ex, sy, shared, per_layer) / 2.0).clamp_(-1.0, 1.0)
    valid = a.valid[0] & b.valid  # (L,); invalid sides are NaN in compute_battery
    return torch.where(valid[:, None], r, torch.nan)


def _kendall(a: PreparedRDMs, b: PreparedRDMs, per_layer: list[_Reindexing]) -> np.ndarray:
    """τ-b per (layer, draw), counted exactly as :func:`hearlike.metrics.rsa.rsa_from_prepared`."""
    n_layers, n_draws, n_frames = b.n_items, per_layer[0].n_draws, a.n_frames
    out = np.full((n_layers, n_draws), np.nan)
    n = a.n_pairs
    if n < 2 or not bool(a.valid[0]):
        return out
    dev = a.dense_ranks.device
    x_dense = a.dense_ranks[0]
    # the X RDM is fixed: sort its pairs once; a draw only needs the Y ranks in that order
    order = torch.sort(x_dense, stable=True).indices
    xs = x_dense[order]
    iu = torch.triu_indices(n_frames, n_frames, offset=1, device=dev)
    flat = (iu[0] * n_frames + iu[1])[order]
    x_tied = int(a.n_levels[0]) < n
    n_total = n * (n - 1) // 2
    ties_x = int(a.tie_pairs[0])
    y_dense = _square(b.dense_ranks, n_frames)
    valid_y = b.valid.cpu().numpy()
    for li in np.flatnonzero(valid_y):
        y_levels, ties_y = int(b.n_levels[li]), int(b.tie_pairs[li])
        denom = math.sqrt(float(n_total - ties_x)) * math.sqrt(float(n_total - ties_y))
        for sl, block in per_layer[li].squares(y_dense[li]):
            seq = block.reshape(block.shape[0], -1)[:, flat]  # Y ranks of the pairs in X order
            on_numpy = dev.type == "cpu" and _NUMPY_ON_CPU
            if x_tied:
                # within a run of equal X ranks the reference orders pairs by Y rank: sort the joint keys
                keys = xs[None, :] * y_levels + seq
                if on_numpy:
                    keys.numpy().sort(axis=1)
                else:
                    keys = torch.sort(keys, dim=1).values
                seq = keys % y_levels
                joint = _joint_ties(keys, on_numpy)
            else:
                joint = np.zeros(seq.shape[0], dtype=np.int64)
            if on_numpy:
                discordant = count_inversions(seq.numpy(), y_levels)
            else:
                discordant = _count_inversions_torch(seq, y_levels).cpu().numpy()
            numer = n_total - ties_x - ties_y + joint - 2 * discordant
            out[li, sl] = np.clip(numer / denom, -1.0, 1.0)
    return out


def _joint_ties(keys: torch.Tensor, on_numpy: bool) -> np.ndarray:
    """Pairs tied in both X and Y: Σ_runs t(t−1)/2 of equal sorted joint keys, per row."""
    equal_next = keys[:, 1:] == keys[:, :-1]
    if on_numpy:
        return _tied_pairs_from_sorted(equal_next.numpy())
    b, m = equal_next.shape
    pos = torch.arange(1, m + 1, device=keys.device).expand(b, m)
    start = torch.cummax(torch.where(equal_next, 0, pos), dim=1).values
    return torch.where(equal_next, pos - start, 0).sum(dim=1).cpu().numpy()


def _gram(
    x0: torch.Tensor,
    y0: torch.Tensor,
    specs: Mapping[str, gram.GramMetric],
    ok: torch.Tensor,
    shared: _Reindexing | None,
    per_layer: list[_Reindexing],
) -> dict[str, torch.Tensor]:
    """Kernel-type metrics: side matrices built once, one permuted Frobenius product per draw."""
    n_frames, n_layers, n_draws = x0.shape[1], y0.shape[0], per_layer[0].n_draws
    results = {
        m: torch.full((n_layers, n_draws), torch.nan, dtype=_backend.DTYPE, device=x0.device) for m in specs
    }
    by_key: dict[Any, list[str]] = {}
    for m, s in specs.items():
        if n_frames >= s.min_frames:
            by_key.setdefault(s.side_key, []).append(m)
    for names in by_key.values():
        side = specs[names[0]].side
        mx, my = side(x0), side(y0)
        sx, sy = gram.self_inner(mx), gram.self_inner(my)  # Frobenius norms do not change under π
        cross = _permuted_cross(mx[0], my, shared, per_layer)
        for m in names:
            # finish works on an (items × items) grid: draws play the X items, layers the Y items
            value = specs[m].finish(cross.T, sx.expand(n_draws), sy, n_frames).T
            results[m] = torch.where(ok[:, None], value, torch.nan)
    return results


def _gcmi(
    x0: torch.Tensor, y0: torch.Tensor, ok: torch.Tensor, bias_correct: bool, per_layer: list[_Reindexing]
) -> torch.Tensor:
    """Gaussian-copula MI: copulas and marginal log-determinants once, the joint one per draw.

    ``log det Σ_XY = log det Σ_X + log det S`` with the Schur complement ``S = Σ_Y − Wᵀ W``,
    ``W = L_X⁻¹ Σ_XY``: X is whitened once (``w_x = g_x L_X⁻ᵀ``), so a draw costs one product
    ``w_xᵀ g_y[π]`` and a q × q Cholesky instead of the (p + q) × (p + q) one of compute_battery. Draws
    whose Schur pivots are small (near-collinear X and Y, where the two factorisations may disagree on
    positive definiteness or differ by > 1e-9) are redone with compute_battery's joint Cholesky.
    """
    n, p, q = x0.shape[1], x0.shape[2], y0.shape[2]
    n_layers, n_draws = y0.shape[0], per_layer[0].n_draws
    out = torch.full((n_layers, n_draws), torch.nan, dtype=x0.dtype, device=x0.device)
    gx, vx = copula_normalise(x0)
    gy, vy = copula_normalise(y0)
    cx, cy = _covariance(gx, vx), _covariance(gy, vy)
    hx, okx = _half_logdet(cx)
    hy, oky = _half_logdet(cy)
    nx, ny = vx.sum(dim=1), vy.sum(dim=1)
    n_joint = nx[0] + ny
    # compute_battery's mask, except the joint positive-definiteness, which is per draw
    layer_ok = ok & okx[0] & oky & (nx[0] > 0) & (ny > 0) & (n_joint <= n - 1)
    layers = torch.nonzero(layer_ok).flatten()
    if layers.numel() == 0:
        return out
    bias = _psi_offsets(n, p + q, nx[0], ny[layers], n_joint[layers], bias_correct, x0)
    offset = (hy[layers] - bias)[:, None]
    wx = torch.linalg.solve_triangular(torch.linalg.cholesky(cx[0]), gx[0].T, upper=False).T  # (T, p)
    cy_sel = cy[layers]
    # pivots below this (squared, relative to the joint's largest variance) take the reference route
    floor = _SCHUR_SAFE_PIVOT * torch.maximum(
        cx[0].diagonal().amax(), cy_sel.diagonal(dim1=1, dim2=2).amax(dim=1)
    )
    idx = torch.stack([per_layer[int(li)].idx for li in layers])  # (L', B, T)
    step = max(1, _GCMI_BLOCK_ENTRIES // (layers.numel() * n * (p + q)))
    for start in range(0, n_draws, step):
        rows = idx[:, start : start + step]
        gyp = gy[layers[:, None, None], rows]  # (L', b, T, q): the permuted copulas
        w = torch.einsum("tp,lbtq->lbpq", wx, gyp) / (n - 1)
        schur = cy_sel[:, None] - w.transpose(-1, -2) @ w
        chol, info = torch.linalg.cholesky_ex(schur)
        piv = torch.diagonal(chol, dim1=-2, dim2=-1)
        hs = torch.log(piv.clamp(min=torch.finfo(x0.dtype).tiny)).sum(dim=-1)
        good = (info == 0) & (piv.square().amin(dim=-1) >= floor[:, None])
        valid = good.clone()
        if not bool(good.all()):
            li, bi = torch.nonzero(~good, as_tuple=True)
            h_joint, ok_joint = _joint_half_logdet(gx[0], cx[0], gyp[li, bi], cy_sel[li], n)
            hs[li, bi] = h_joint - hx[0]
            valid[li, bi] = ok_joint
        mi = (offset - hs) / math.log(2.0)  # hx + hy − (hx + hs) − bias terms
        out[layers, start : start + rows.shape[1]] = torch.where(valid, mi, torch.nan)
    return out


def _psi_offsets(
    n: int,
    width: int,
    nx: torch.Tensor,
    ny: torch.Tensor,
    n_joint: torch.Tensor,
    bias_correct: bool,
    like: torch.Tensor,
) -> torch.Tensor:
    """Ince et al.'s bias correction ``c[nx] + c[ny] − c[nx + ny]`` per layer (0 without correction)."""
    if not bias_correct:
        return torch.zeros_like(ny, dtype=like.dtype)
    c = _psi_cumsum(n, width, like.dtype, like.device)
    return c[nx] + c[ny] - c[n_joint]


def _joint_half_logdet(
    gx: torch.Tensor, cx: torch.Tensor, gyp: torch.Tensor, cy: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """compute_battery's route for k draws: the (p + q) × (p + q) joint covariance and its Cholesky."""
    p, q = cx.shape[0], cy.shape[-1]
    cxy = torch.einsum("tp,ktq->kpq", gx, gyp) / (n - 1)
    joint = torch.empty((gyp.shape[0], p + q, p + q), dtype=gx.dtype, device=gx.device)
    joint[:, :p, :p] = cx
    joint[:, p:, p:] = cy
    joint[:, :p, p:] = cxy
    joint[:, p:, :p] = cxy.transpose(1, 2)
    return _half_logdet(joint)
