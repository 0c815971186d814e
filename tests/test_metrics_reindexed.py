"""compute_battery_reindexed against compute_battery on re-indexed copies, and the nulls built on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hearlike import nulls
from hearlike.metrics import METRIC_NAMES, compute_battery, compute_battery_reindexed, reindexed

TOL = 1e-9


def reference(
    X: np.ndarray,
    Y: np.ndarray,
    idx: np.ndarray,
    metrics: list[str] | tuple[str, ...],
    settings: dict | None = None,
) -> dict[str, np.ndarray]:
    """(L, B) per metric from compute_battery on every re-indexed copy (idx (B, T) or (L, B, T))."""
    n_layers = Y.shape[0]
    per_layer = np.broadcast_to(idx, (n_layers, *idx.shape[-2:])) if idx.ndim == 2 else idx
    out = {m: np.empty(per_layer.shape[:2]) for m in metrics}
    for li in range(n_layers):
        for b, rows in enumerate(per_layer[li]):
            res = compute_battery(X[None], Y[li : li + 1, rows], metrics=list(metrics), settings=settings)
            for m in metrics:
                out[m][li, b] = res[m][0, 0]
    return out


def assert_same(new: dict[str, np.ndarray], ref: dict[str, np.ndarray], tol: float = TOL) -> None:
    for m, r in ref.items():
        assert new[m].shape == r.shape, m
        np.testing.assert_array_equal(np.isnan(new[m]), np.isnan(r), err_msg=f"{m}: NaN pattern")
        np.testing.assert_allclose(new[m], r, rtol=0, atol=tol, equal_nan=True, err_msg=m)


def index_sets(rng: np.random.Generator, n_frames: int, n_draws: int) -> dict[str, np.ndarray]:
    shifts = nulls.circular_shift_indices(rng.integers(0, n_frames, n_draws), n_frames)
    perms = nulls.draw_frame_permutations(n_frames=n_frames, n_perm=n_draws, rng=rng)
    return {"shifts": shifts, "perms": perms, "mixed": np.concatenate([shifts[:2], perms[:2], shifts[2:]])}


@pytest.mark.parametrize(
    ("n_frames", "p", "q", "rounded"),
    [
        (3, 2, 2, False),
        (4, 1, 1, True),
        (5, 2, 3, True),
        (12, 2, 1, True),
        (40, 5, 3, False),
        (60, 31, 20, False),
    ],
)
def test_every_metric_matches_compute_battery_on_reindexed_copies(
    n_frames: int, p: int, q: int, rounded: bool
) -> None:
    rng = np.random.default_rng(n_frames * 100 + p)
    X = rng.standard_normal((n_frames, p))
    if rounded:
        X = np.round(X)  # ties: p = 1 gives tied |x_i − x_j|, p = 2 correlation distances of exactly 0 or 2
    Y = rng.standard_normal((3, n_frames, q))
    Y[1] = np.round(Y[1] * 2) / 2  # a layer with ties as well
    for name, idx in index_sets(rng, n_frames, 5).items():
        ref = reference(X, Y, idx, METRIC_NAMES)
        assert_same(compute_battery_reindexed(X, Y, idx, metrics=METRIC_NAMES), ref)
        if name == "mixed":
            # its own re-indexings per layer
            per_layer = np.stack([idx, idx[::-1], np.roll(idx, 1, axis=0)])
            ref = reference(X, Y, per_layer, METRIC_NAMES)
            assert_same(compute_battery_reindexed(X, Y, per_layer, metrics=METRIC_NAMES), ref)


def test_torch_routes_used_on_cuda_match_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gathers and τ-b counts that CUDA runs (torch instead of numpy), checked on CPU tensors."""
    monkeypatch.setattr(reindexed, "_NUMPY_ON_CPU", False)
    rng = np.random.default_rng(17)
    X = np.round(rng.standard_normal((14, 1)))
    Y = rng.standard_normal((2, 14, 3))
    idx = index_sets(rng, 14, 4)["mixed"]
    for ix in (idx, np.stack([idx, idx[::-1]])):
        assert_same(
            compute_battery_reindexed(X, Y, ix, metrics=METRIC_NAMES), reference(X, Y, ix, METRIC_NAMES)
        )


def test_long_sentence_and_identity_is_the_observed_value() -> None:
    rng = np.random.default_rng(200)
    n_frames = 200
    X = np.cumsum(rng.standard_normal((n_frames, 4)), axis=0)
    Y = np.cumsum(rng.standard_normal((2, n_frames, 6)), axis=1)
    idx = np.concatenate([np.arange(n_frames)[None], index_sets(rng, n_frames, 2)["mixed"][:3]])
    ref = reference(X, Y, idx, METRIC_NAMES)
    new = compute_battery_reindexed(X, Y, idx, metrics=METRIC_NAMES)
    assert_same(new, ref)
    observed = compute_battery(X[None], Y, metrics=METRIC_NAMES)
    for m in METRIC_NAMES:
        np.testing.assert_allclose(new[m][:, 0], observed[m][0], rtol=0, atol=TOL, err_msg=m)


def test_settings_have_the_engine_semantics() -> None:
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((2, 30, 4))
    settings = {
        "cka_rbf": {"bandwidth": 2.0},
        "hsic_rbf": {"bandwidth": 0.5},
        "cka_debiased": {"kernel": "rbf", "bandwidth": 1.5},
        "dcor": {"exponent": 0.5},
        "dcor2": {"exponent": 1.5},
        "gcmi": {"bias_correct": False},
    }
    metrics = list(settings)
    idx = index_sets(rng, 30, 4)["mixed"]
    assert_same(
        compute_battery_reindexed(X, Y, idx, metrics=metrics, settings=settings),
        reference(X, Y, idx, metrics, settings),
    )
    with pytest.raises(ValueError, match="no setting"):
        compute_battery_reindexed(X, Y, idx, metrics=["rv"], settings={"rv": {"bandwidth": 1.0}})
    with pytest.raises(ValueError, match="not requested"):
        compute_battery_reindexed(X, Y, idx, metrics=["rv"], settings={"dcor": {}})


def test_degenerate_inputs_give_nan_where_compute_battery_does() -> None:
    rng = np.random.default_rng(11)
    n_frames = 16
    X = rng.standard_normal((n_frames, 3))
    X[:, 1] = 2.0  # a constant channel (gcmi drops it; kernels keep working)
    X[4] = 0.5  # a frame whose features are all equal: no correlation distance → RSA NaN
    Y = rng.standard_normal((5, n_frames, 3))
    Y[0] = 1.0  # a constant layer
    Y[1, 3, 2] = np.nan  # a non-finite value
    Y[2, :, 0] = -1.0  # one constant column
    Y[3] = Y[3, :, :1]  # three identical columns: p + q within T − 1 but a singular Y covariance
    idx = index_sets(rng, n_frames, 4)["mixed"]
    ref = reference(X, Y, idx, METRIC_NAMES)
    new = compute_battery_reindexed(X, Y, idx, metrics=METRIC_NAMES)
    assert_same(new, ref)
    assert np.isnan(new["rsa_spearman"]).all() and np.isnan(new["rv"][:2]).all()
    assert (
        np.isfinite(new["rv"][2:]).all()
        and np.isfinite(new["gcmi"][2]).all()
        and np.isnan(new["gcmi"][3]).all()
    )
    # a constant X, too many features for gcmi, and T < 4 for debiased CKA
    const = compute_battery_reindexed(np.ones((n_frames, 2)), Y[2:], idx, metrics=METRIC_NAMES)
    assert all(np.isnan(v).all() for v in const.values())
    wide = rng.standard_normal((8, 4))
    gc = compute_battery_reindexed(wide, rng.standard_normal((1, 8, 4)), np.arange(8)[None], metrics=["gcmi"])
    assert np.isnan(gc["gcmi"]).all()
    tiny = compute_battery_reindexed(X[:3], Y[2:, :3], np.array([[1, 2, 0]]), metrics=METRIC_NAMES)
    assert np.isnan(tiny["cka_debiased"]).all() and np.isfinite(tiny["cka_linear"]).all()
    two = compute_battery_reindexed(X[:2], Y[:, :2], np.array([[1, 0]]), metrics=METRIC_NAMES)
    assert all(v.shape == (5, 1) and np.isnan(v).all() for v in two.values())
    empty = compute_battery_reindexed(X, Y, np.empty((0, n_frames), dtype=np.int64), metrics=["rv"])
    assert empty["rv"].shape == (5, 0)


def test_gcmi_near_collinear_draws_take_the_reference_route() -> None:
    """A draw where X nearly equals the permuted Y has tiny Schur pivots: recomputed as compute_battery does."""
    rng = np.random.default_rng(5)
    n_frames = 50
    Y = rng.standard_normal((2, n_frames, 3))
    idx = index_sets(rng, n_frames, 3)["perms"]
    X = np.concatenate(
        [Y[0, idx[1]] + 6e-3 * rng.standard_normal((n_frames, 3)), rng.standard_normal((n_frames, 2))], 1
    )
    ref = reference(X, Y, idx, ["gcmi"])
    assert ref["gcmi"][0, 1] > 5 * np.median(ref["gcmi"])  # the planted draw carries most information
    new = compute_battery_reindexed(X, Y, idx, metrics=["gcmi"])
    np.testing.assert_allclose(new["gcmi"], ref["gcmi"], rtol=1e-9, atol=TOL)


def test_bad_indices_are_rejected() -> None:
    X, Y = np.zeros((5, 2)), np.zeros((1, 5, 2))
    with pytest.raises(ValueError, match="permutation"):
        compute_battery_reindexed(X, Y, np.array([[0, 0, 1, 2, 3]]), metrics=["rv"])
    with pytest.raises(ValueError, match="shape"):
        compute_battery_reindexed(X, Y, np.arange(4)[None], metrics=["rv"])
    with pytest.raises(ValueError, match="integer"):
        compute_battery_reindexed(X, Y, np.arange(5.0)[None], metrics=["rv"])


# --------------------------------------------------------------------------------------------------
# nulls and subject_metric on the fast path


def _battery_scores(metric: str) -> tuple:
    def batch_score(X: np.ndarray, Ys: np.ndarray) -> np.ndarray:
        return compute_battery(X[None], Ys, metrics=[metric])[metric][0]

    def indexed_score(X: np.ndarray, Y: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return compute_battery_reindexed(X, Y[None], idx, metrics=[metric])[metric][0]

    def layer_indexed_score(X: np.ndarray, Ys: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return compute_battery_reindexed(X, Ys, idx, metrics=[metric])[metric]

    return batch_score, indexed_score, layer_indexed_score


def _assert_tables_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=TOL)


@pytest.mark.parametrize("metric", ["rsa_spearman", "hsic_rbf", "gcmi"])
def test_sentence_null_tables_equal_with_and_without_indexed_score(metric: str) -> None:
    rng = np.random.default_rng(21)
    lengths = {2: 60, 4: 75, 7: 45, 9: 90}
    eeg = {s: rng.standard_normal((t, 5)) for s, t in lengths.items()}
    model = {s: rng.standard_normal((3, t, 4)) for s, t in lengths.items()}
    batch_score, indexed_score, layer_indexed_score = _battery_scores(metric)
    kw = {"frame_rate_hz": 20.0, "n_shifts": 15, "n_mismatch": 2, "n_perm_codefaithful": 12}
    seeds = [101, 202, 303]
    old = [
        nulls.sentence_null_table(eeg=eeg, model={s: y[li] for s, y in model.items()}, seed=seeds[li],
                                  batch_score=batch_score, **kw)
        for li in range(3)
    ]  # fmt: skip
    assert np.isfinite(old[0]["p_shift"]).sum() == 3  # the 45-frame sentence is too short for shifts
    for li in range(3):
        fast = nulls.sentence_null_table(
            eeg=eeg, model={s: y[li] for s, y in model.items()}, seed=seeds[li], batch_score=batch_score,
            indexed_score=indexed_score, **kw,
        )  # fmt: skip
        _assert_tables_equal(fast, old[li])
    layered = nulls.layer_sentence_null_tables(
        eeg=eeg,
        model=model,
        seeds=seeds,
        batch_score=batch_score,
        layer_indexed_score=layer_indexed_score,
        **kw,
    )
    for li in range(3):
        _assert_tables_equal(layered[li], old[li])
    # the single-sentence nulls: indexed_score alone also gives the observed value (identity re-indexing)
    x, y = eeg[9], model[9][0]
    for fn, extra in ((nulls.circular_shift_null, {"frame_rate_hz": 20.0, "n_shifts": 15}),
                      (nulls.frame_permutation_null_codefaithful, {"n_perm": 12})):  # fmt: skip
        a = fn(eeg=x, model=y, batch_score=batch_score, rng=np.random.default_rng(3), **extra)
        b = fn(eeg=x, model=y, indexed_score=indexed_score, rng=np.random.default_rng(3), **extra)
        np.testing.assert_allclose(b.null, a.null, rtol=0, atol=TOL)
        assert b.observed == pytest.approx(a.observed, abs=TOL) and b.p_value == a.p_value
