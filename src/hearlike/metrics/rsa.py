"""Representational similarity analysis: correlations between RDM vectors (METHODS §5.2–5.3).

* ``rsa_spearman``: Pearson correlation of average (tie-corrected) ranks = ``scipy.stats.spearmanr``;
* ``rsa_pearson``: Pearson correlation of the RDM values;
* ``rsa_kendall``: Kendall's τ-b = ``scipy.stats.kendalltau`` (variant 'b'), computed in O(n log n).

Spearman and Pearson for all (X item, Y item) pairs are one matrix product of the standardised vectors
prepared by :func:`hearlike.metrics.rdm.prepare_rdm_side`. Kendall's τ-b uses the dense ranks prepared
there: for each pair, one integer sort by (x rank, y rank) and a vectorised bottom-up merge count of the
discordant pairs (Knight 1966), batched over all X items against one Y item.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hearlike.metrics import _backend
from hearlike.metrics.rdm import PreparedRDMs, prepare_rdm_side

# Merge levels below this block size are counted by direct comparison, which is cheaper than sorting.
_BRUTE_BLOCK = 16
# Entries (items × padded length) processed per Kendall batch; bounds the int64 temporaries (~8 of them).
_KENDALL_BATCH_ENTRIES = 1 << 22


def rsa_from_prepared(a: PreparedRDMs, b: PreparedRDMs, method: str = "spearman") -> np.ndarray:
    """(A items × B items) RSA correlations between two prepared sides of the same sentence."""
    if a.n_frames != b.n_frames:
        raise ValueError(f"sides have different numbers of frames ({a.n_frames} vs {b.n_frames})")
    if method in ("spearman", "pearson"):
        va, vb = getattr(a, method), getattr(b, method)
        if va is None or vb is None:
            raise ValueError(f"both sides must be prepared with method {method!r}")
        if va.device != vb.device:
            raise ValueError("both sides must be on the same device")
        with _backend.exact_numerics(va.device):
            r = (va @ vb.T).clamp_(-1.0, 1.0)
        return _backend.to_numpy(r)
    if method == "kendall":
        return _kendall_from_prepared(a, b)
    raise ValueError(f"unknown RSA method {method!r}")


def rsa(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    method: str = "spearman",
    *,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """RSA between every item of ``x`` (B, T, p) and of ``y`` (L, T, q): a (B, L) array."""
    a = prepare_rdm_side(x, methods=(method,), device=device)
    b = prepare_rdm_side(y, methods=(method,), device=device)
    return rsa_from_prepared(a, b, method)


def _kendall_from_prepared(a: PreparedRDMs, b: PreparedRDMs) -> np.ndarray:
    if a.dense_ranks is None or b.dense_ranks is None:
        raise ValueError("both sides must be prepared with method 'kendall'")
    out = np.full((a.n_items, b.n_items), np.nan)
    n = a.n_pairs
    if n < 2:
        return out
    va, vb = a.valid.cpu().numpy(), b.valid.cpu().numpy()
    rows_a = np.flatnonzero(va)
    if rows_a.size == 0:
        return out
    n_total = n * (n - 1) // 2
    padded = _padded_length(n)
    per_batch = max(1, _KENDALL_BATCH_ENTRIES // padded)
    on_cpu = a.dense_ranks.device.type == "cpu"
    ties_a = a.tie_pairs.cpu().numpy()
    ties_b = b.tie_pairs.cpu().numpy()
    for j in np.flatnonzero(vb):
        y_ranks = b.dense_ranks[j]
        y_levels = int(b.n_levels[j])
        for start in range(0, rows_a.size, per_batch):
            rows = rows_a[start : start + per_batch]
            x_ranks = a.dense_ranks[torch.as_tensor(rows, device=a.dense_ranks.device)]
            if on_cpu:
                discordant, joint_ties = _discordant_numpy(x_ranks.numpy(), y_ranks.numpy(), y_levels)
            else:
                discordant, joint_ties = _discordant_torch(x_ranks, y_ranks.to(x_ranks.device), y_levels)
            # τ_b = (n0 − n1 − n2 + n3 − 2D) / sqrt((n0 − n1)(n0 − n2)), exact integer numerator
            numer = n_total - ties_a[rows] - ties_b[j] + joint_ties - 2 * discordant
            denom = np.sqrt((n_total - ties_a[rows]).astype(np.float64)) * math.sqrt(
                float(n_total - ties_b[j])
            )
            out[rows, j] = np.clip(numer / denom, -1.0, 1.0)
    return out


def _padded_length(n: int) -> int:
    """Power of two ≥ n and ≥ 2·_BRUTE_BLOCK, so that merge blocks never straddle two sequences."""
    return max(2 * _BRUTE_BLOCK, 1 << (n - 1).bit_length())


def _discordant_numpy(
    x_ranks: np.ndarray, y_ranks: np.ndarray, y_levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Discordant pairs D and pairs tied in both x and y, for each row of x against one y (numpy)."""
    keys = x_ranks.astype(np.int64) * np.int64(y_levels) + y_ranks[None, :]
    keys.sort(axis=1)
    seq = keys % y_levels  # y ranks in (x, y) order: D = strict inversions of this sequence
    runs_equal = keys[:, 1:] == keys[:, :-1]
    joint_ties = _tied_pairs_from_sorted(runs_equal)
    return count_inversions(seq, y_levels), joint_ties


def _tied_pairs_from_sorted(equal_next: np.ndarray) -> np.ndarray:
    """Σ_runs t(t−1)/2 per row, from the mask 'entry k+1 equals entry k' of sorted rows."""
    b, m = equal_next.shape
    if m == 0:
        return np.zeros(b, dtype=np.int64)
    pos = np.arange(1, m + 1, dtype=np.int64)
    start = np.maximum.accumulate(np.where(equal_next, 0, pos), axis=1)
    return np.where(equal_next, pos - start, 0).sum(axis=1)


def count_inversions(seq: np.ndarray, n_values: int) -> np.ndarray:
    """Pairs i < j with seq[i] > seq[j], for each row of an integer (B, n) array with values in [0, n_values).

    Bottom-up merge sort, one row at a time (its working set stays in cache) and all blocks of a level
    at once. The row is padded to a power of two with a value larger than any other (padding at the end
    forms no inversion); blocks of 16 are counted by direct comparison. Each further level sorts the keys
    ``block · 2(n_values + 1) + 2·value + half`` (half = 1 for the right half of a block): the sort
    merges the two sorted halves, puts left before right on equal values, and needs no stable argsort
    because equal keys are interchangeable. A right element at index r of its half that lands at position
    m of the merged block has m − r left elements before it and width − (m − r) after it, so a level
    contributes Σ_blocks (width² + width(width−1)/2) − Σ_right m inversions.
    """
    return np.array([_inversions_row(row, n_values) for row in np.asarray(seq)], dtype=np.int64)


def _key_dtype(size: int, n_values: int) -> type[np.signedinteger]:
    # int32 halves the memory traffic of the sorts when the largest key fits
    largest = (size // (2 * _BRUTE_BLOCK)) * 2 * (n_values + 1) + 2 * n_values + 1
    return np.int32 if largest < np.iinfo(np.int32).max else np.int64


def _inversions_row(seq: np.ndarray, n_values: int) -> int:
    n = seq.shape[0]
    size = _padded_length(n)
    dtype = _key_dtype(size, n_values)
    a = np.full(size, n_values, dtype=dtype)
    a[:n] = seq
    blocks = a.reshape(size // _BRUTE_BLOCK, _BRUTE_BLOCK)
    total = 0
    for i in range(_BRUTE_BLOCK - 1):
        total += int(np.count_nonzero(blocks[:, i : i + 1] > blocks[:, i + 1 :]))
    a = np.sort(blocks, axis=1).reshape(-1)
    idx = np.arange(size, dtype=dtype)
    stride = dtype(2 * (n_values + 1))
    width, level = _BRUTE_BLOCK, _BRUTE_BLOCK.bit_length() - 1
    while width < size:
        offset = (idx >> (level + 1)) * stride
        key = a << 1
        key += offset
        key += (idx >> level) & 1
        key.sort()
        sum_pos = int(((idx & (2 * width - 1)) * (key & 1)).sum(dtype=np.int64))
        total += (size // (2 * width)) * (width * width + width * (width - 1) // 2) - sum_pos
        key -= offset
        a = key >> 1
        width, level = width * 2, level + 1
    return total


def _discordant_torch(
    x_ranks: torch.Tensor, y_ranks: torch.Tensor, y_levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Same as :func:`_discordant_numpy` in torch (used on CUDA)."""
    keys = x_ranks * y_levels + y_ranks[None, :]
    keys = torch.sort(keys, dim=1).values
    seq = keys % y_levels
    equal_next = keys[:, 1:] == keys[:, :-1]
    b, m = equal_next.shape
    pos = torch.arange(1, m + 1, device=keys.device).expand(b, m)
    start = torch.cummax(torch.where(equal_next, 0, pos), dim=1).values
    joint = torch.where(equal_next, pos - start, 0).sum(dim=1)
    return _count_inversions_torch(seq, y_levels).cpu().numpy(), joint.cpu().numpy()


def _count_inversions_torch(seq: torch.Tensor, n_values: int) -> torch.Tensor:
    """Torch twin of :func:`count_inversions` (same algorithm, batched over rows, for CUDA)."""
    b, n = seq.shape
    size = _padded_length(n)
    a = torch.full((b, size), n_values, dtype=torch.int64, device=seq.device)
    a[:, :n] = seq
    blocks = a.reshape(b, size // _BRUTE_BLOCK, _BRUTE_BLOCK)
    total = torch.zeros(b, dtype=torch.int64, device=seq.device)
    for i in range(_BRUTE_BLOCK - 1):
        total += (blocks[:, :, i : i + 1] > blocks[:, :, i + 1 :]).sum(dim=(1, 2))
    a = torch.sort(blocks, dim=2).values.reshape(b, size)
    idx = torch.arange(size, dtype=torch.int64, device=seq.device)
    stride = 2 * (n_values + 1)
    width, level = _BRUTE_BLOCK, _BRUTE_BLOCK.bit_length() - 1
    while width < size:
        offset = (idx >> (level + 1)) * stride
        key = torch.sort((a << 1) + offset + ((idx >> level) & 1), dim=1).values
        sum_pos = ((idx & (2 * width - 1)) * (key & 1)).sum(dim=1)
        total += (size // (2 * width)) * (width * width + width * (width - 1) // 2) - sum_pos
        a = (key - offset) >> 1
        width, level = width * 2, level + 1
    return total
