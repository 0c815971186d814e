"""RDMs, ranks and RSA (Spearman, Pearson, Kendall τ-b) against scipy and rsatoolbox."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.stats as ss
import torch
from rsatoolbox.data import Dataset
from rsatoolbox.rdm import RDMs, calc_rdm, compare
from scipy.spatial.distance import pdist

from hearlike.metrics import (
    compute,
    compute_battery,
    prepare_rdm_side,
    rank_rows,
    rdm_vector,
    rsa_from_prepared,
)
from hearlike.metrics import rdm as rdm_mod
from hearlike.metrics import rsa as rsa_mod

TOL = 1e-6
SCIPY = {
    "rsa_spearman": lambda a, b: ss.spearmanr(a, b).statistic,
    "rsa_pearson": lambda a, b: ss.pearsonr(a, b).statistic,
    "rsa_kendall": lambda a, b: ss.kendalltau(a, b).statistic,
}
RSA_NAMES = list(SCIPY)


def reference_rdm(x: np.ndarray) -> np.ndarray:
    """scipy's RDM: |x_i − x_j| for one feature, correlation distance otherwise (rounded like ours)."""
    if x.shape[1] == 1:
        return pdist(x, "cityblock")
    return np.round(pdist(x, "correlation"), rdm_mod.CORRELATION_DECIMALS)


def scipy_battery(X: np.ndarray, Y: np.ndarray, name: str) -> np.ndarray:
    rx = [reference_rdm(x) for x in X]
    ry = [reference_rdm(y) for y in Y]
    return np.array([[SCIPY[name](a, b) for b in ry] for a in rx])


@pytest.mark.parametrize("p", [1, 2, 5])
@pytest.mark.parametrize("n_frames", [2, 3, 7, 40])
def test_rdm_vector_matches_scipy_pdist(p: int, n_frames: int) -> None:
    x = np.random.default_rng(p * 100 + n_frames).standard_normal((n_frames, p))
    ours = rdm_vector(x)
    ref = pdist(x, "cityblock" if p == 1 else "correlation")
    assert ours.shape == ref.shape == (n_frames * (n_frames - 1) // 2,)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-11)


def test_rdm_matches_rsatoolbox_correlation_rdm() -> None:
    x = np.random.default_rng(3).standard_normal((50, 6))
    ref = calc_rdm(Dataset(x), method="correlation").get_vectors()[0]
    np.testing.assert_allclose(rdm_vector(x), ref, rtol=0, atol=1e-11)


def test_two_feature_rdm_ties_are_exact() -> None:
    # with p = 2 the correlation distance is 0 or 2 in exact arithmetic; rounding must not split the ties
    x = np.random.default_rng(4).standard_normal((60, 2))
    assert set(np.unique(rdm_vector(x))) <= {0.0, 2.0}


@pytest.mark.parametrize("n", [1, 2, 5, 64, 1000])
@pytest.mark.parametrize("levels", [3, 50, None])
def test_rank_rows_matches_scipy_rankdata(n: int, levels: int | None) -> None:
    rng = np.random.default_rng(n)
    v = rng.standard_normal((4, n)) if levels is None else rng.integers(0, levels, (4, n)).astype(float)
    ref = ss.rankdata(v, axis=1)
    centred = ref - ref.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        ref_std = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    for ranker in (rdm_mod._rank_rows_numpy, rdm_mod._rank_rows_torch):
        info = ranker(torch.from_numpy(v), True, True, True)
        np.testing.assert_array_equal(info.average.numpy(), ref)
        np.testing.assert_allclose(info.standardised.numpy(), ref_std, rtol=0, atol=1e-14)
        np.testing.assert_array_equal(info.dense.numpy(), ss.rankdata(v, method="dense", axis=1) - 1)
        for row, ties, lev in zip(v, info.tie_pairs.numpy(), info.n_levels.numpy(), strict=True):
            _, counts = np.unique(row, return_counts=True)
            assert ties == (counts * (counts - 1) // 2).sum()
            assert lev == counts.size


def test_rank_rows_nan_row_is_nan_only_there() -> None:
    v = np.random.default_rng(5).standard_normal((3, 20))
    v[1, 4] = np.nan
    ranks = rank_rows(torch.from_numpy(v)).average.numpy()
    assert np.isnan(ranks[1]).all()
    np.testing.assert_array_equal(ranks[[0, 2]], ss.rankdata(v[[0, 2]], axis=1))


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 31, 32, 33, 100, 257])
def test_count_inversions_matches_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    seq = rng.integers(0, max(2, n // 3), (3, n))
    brute = [sum(int((row[:i] > row[i]).sum()) for i in range(n)) for row in seq]
    n_values = int(seq.max()) + 1
    np.testing.assert_array_equal(rsa_mod.count_inversions(seq, n_values), brute)
    np.testing.assert_array_equal(
        rsa_mod._count_inversions_torch(torch.from_numpy(seq), n_values).numpy(), brute
    )


def test_kendall_torch_twin_equals_numpy() -> None:
    rng = np.random.default_rng(6)
    x = rng.integers(0, 40, (3, 500))
    y = rng.integers(0, 30, 500)
    d_np, j_np = rsa_mod._discordant_numpy(x, y, int(y.max()) + 1)
    d_t, j_t = rsa_mod._discordant_torch(torch.from_numpy(x), torch.from_numpy(y), int(y.max()) + 1)
    np.testing.assert_array_equal(d_np, d_t)
    np.testing.assert_array_equal(j_np, j_t)


def _tied_data(rng: np.random.Generator, shape: tuple[int, ...], p: int) -> np.ndarray:
    """One feature: small integers (many tied |x_i − x_j|); several features: coarse values."""
    if p == 1:
        return rng.integers(0, 6, shape).astype(float)
    return np.round(rng.standard_normal(shape), 1)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # NaN cases must agree too
@pytest.mark.parametrize(
    ("n_frames", "p", "q"), [(3, 1, 20), (4, 2, 2), (9, 1, 3), (30, 3, 20), (120, 1, 20), (500, 2, 20)]
)
def test_rsa_matches_scipy_with_ties(n_frames: int, p: int, q: int) -> None:
    rng = np.random.default_rng(n_frames)
    n_x, n_y = (2, 2) if n_frames >= 500 else (3, 4)
    X = _tied_data(rng, (n_x, n_frames, p), p)
    Y = rng.standard_normal((n_y, n_frames, q))
    Y[0] = np.round(Y[0], 0)  # ties on the model side too
    ours = compute_battery(X, Y, metrics=RSA_NAMES)
    for name in RSA_NAMES:
        np.testing.assert_allclose(ours[name], scipy_battery(X, Y, name), rtol=0, atol=TOL, err_msg=name)


def test_rsa_matches_rsatoolbox_compare() -> None:
    rng = np.random.default_rng(7)
    n_frames = 60
    X = rng.standard_normal((3, n_frames, 1))
    X[0] = np.round(X[0], 1)
    Y = rng.standard_normal((4, n_frames, 20))
    rdms_x = RDMs(dissimilarities=np.stack([pdist(x, "cityblock") for x in X]))
    rdms_y = calc_rdm([Dataset(y) for y in Y], method="correlation")
    ours = compute_battery(X, Y, metrics=RSA_NAMES)
    for name, method in [("rsa_spearman", "spearman"), ("rsa_pearson", "corr"), ("rsa_kendall", "tau-b")]:
        np.testing.assert_allclose(
            ours[name], compare(rdms_x, rdms_y, method), rtol=0, atol=TOL, err_msg=name
        )
    # rsatoolbox's squared-Euclidean RDM of one feature is a monotone map of |x_i − x_j|: same rank metric.
    # Only for untied data: it computes ‖a‖² + ‖b‖² − 2ab, whose rounding splits exactly tied distances.
    sq = calc_rdm([Dataset(x) for x in X[1:]], method="euclidean")
    np.testing.assert_allclose(ours["rsa_spearman"][1:], compare(sq, rdms_y, "spearman"), rtol=0, atol=TOL)


def test_prepared_sides_reused_across_partners() -> None:
    rng = np.random.default_rng(8)
    n_frames = 25
    layers = rng.standard_normal((5, n_frames, 8))
    side_layers = prepare_rdm_side(layers, methods=("spearman", "pearson", "kendall"))
    assert side_layers.methods == ("spearman", "pearson", "kendall")
    for subject in range(2):
        eeg = rng.standard_normal((3, n_frames, 1)) + subject
        side_eeg = prepare_rdm_side(eeg, methods=("spearman", "pearson", "kendall"))
        for name in RSA_NAMES:
            direct = compute_battery(eeg, layers, metrics=[name])[name]
            np.testing.assert_array_equal(rsa_from_prepared(side_eeg, side_layers, name[4:]), direct)


def test_prepared_sides_must_match() -> None:
    rng = np.random.default_rng(9)
    a = prepare_rdm_side(rng.standard_normal((2, 10, 3)))
    with pytest.raises(ValueError, match="frames"):
        rsa_from_prepared(a, prepare_rdm_side(rng.standard_normal((2, 11, 3))))
    with pytest.raises(ValueError, match="kendall"):
        rsa_from_prepared(a, a, "kendall")
    with pytest.raises(ValueError, match="unknown RSA"):
        prepare_rdm_side(rng.standard_normal((2, 10, 3)), methods=("cosine",))


def test_rsa_degenerate_inputs_are_nan() -> None:
    rng = np.random.default_rng(10)
    y = rng.standard_normal((30, 5))
    constant_electrode = np.full((30, 1), 3.0)  # constant RDM
    flat_frame = rng.standard_normal((30, 4))
    flat_frame[7] = 1.5  # a frame with no pattern: its correlation distances do not exist
    for name in RSA_NAMES:
        assert np.isnan(compute(name, constant_electrode, y))
        assert np.isnan(compute(name, flat_frame, y))
        assert np.isnan(compute(name, y[:2], y[:2, :1]))  # T = 2: a single RDM entry
        assert np.isfinite(compute(name, y[:3], y[:3, :1] ** 2))


def test_rsa_is_symmetric_and_scale_invariant() -> None:
    rng = np.random.default_rng(11)
    X = rng.standard_normal((2, 40, 3))
    Y = rng.standard_normal((3, 40, 6))
    ab = compute_battery(X, Y, metrics=RSA_NAMES)
    ba = compute_battery(Y, X * 7.5 + 2.0, metrics=RSA_NAMES)
    for name in RSA_NAMES:
        np.testing.assert_allclose(ab[name], ba[name].T, rtol=0, atol=1e-12)


def test_kendall_on_90k_entries_is_fast_and_exact() -> None:
    rng = np.random.default_rng(12)
    n_frames = 425  # 90,100 RDM entries
    x = rng.standard_normal((1, n_frames, 1))
    y = x + rng.standard_normal((1, n_frames, 1))
    a = prepare_rdm_side(x, methods=("kendall",))
    b = prepare_rdm_side(y, methods=("kendall",))
    start = time.perf_counter()
    tau = rsa_from_prepared(a, b, "kendall")[0, 0]
    elapsed = time.perf_counter() - start
    assert abs(tau - ss.kendalltau(pdist(x[0], "cityblock"), pdist(y[0], "cityblock")).statistic) < TOL
    # an O(n²) algorithm needs ~4·10⁹ comparisons here; O(n log n) takes well under a second
    assert elapsed < 5.0


def test_cuda_twins_equal_cpu_paths_on_cpu() -> None:
    # the gather-based triangle and the torch ranker are what CUDA runs; check them here on CPU
    rng = np.random.default_rng(13)
    m = torch.from_numpy(rng.standard_normal((3, 9, 9)))
    np.testing.assert_array_equal(rdm_mod._upper_triangle_gather(m), rdm_mod.upper_triangle(m))
    sig = torch.from_numpy(rng.standard_normal((3, 9)))
    np.testing.assert_array_equal(
        rdm_mod._upper_triangle_gather(sig[:, None, :] - sig[:, :, None]),
        rdm_mod.upper_triangle(sig, diff=True),
    )
    v = torch.from_numpy(np.round(rng.standard_normal((4, 300)), 1))
    a = rdm_mod._rank_rows_numpy(v, True, True, True)
    b = rdm_mod._rank_rows_torch(v, True, True, True)
    for field in ("average", "dense", "n_levels", "tie_pairs"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    np.testing.assert_allclose(a.standardised, b.standardised, rtol=0, atol=1e-15)
