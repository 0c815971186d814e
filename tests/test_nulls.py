"""Nulls for one model–EEG score: correctness of each null and false-positive calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal, stats
from scipy.spatial.distance import pdist

from hearlike import nulls
from hearlike.seeding import derive_seed
from hearlike.stats import standardized_ranks

FS = 50.0  # model frame rate of the simulations (Hz)


def rsa(x: np.ndarray, y: np.ndarray) -> float:
    """Reference RSA: correlation-distance RDMs (scipy) compared with scipy's Spearman."""
    return float(stats.spearmanr(pdist(x, "correlation"), pdist(y, "correlation"))[0])


def batch_rsa(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    e = standardized_ranks(pdist(x, "correlation"))
    m = standardized_ranks(np.stack([pdist(y, "correlation") for y in ys]))
    return m @ e


def rsa_matrix(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    e = standardized_ranks(np.stack([pdist(x, "correlation") for x in xs]))
    m = standardized_ranks(np.stack([pdist(y, "correlation") for y in ys]))
    return e @ m.T


def smooth_noise(rng: np.random.Generator, sos: np.ndarray, n: int, dim: int, pad: int = 100) -> np.ndarray:
    """Low-pass filtered Gaussian noise; padded and cropped so the kept part has no filter edge effects."""
    return signal.sosfiltfilt(sos, rng.standard_normal((n + 2 * pad, dim)), axis=0)[pad : pad + n]


# --------------------------------------------------------------------------------------------------
# building blocks


def test_p_value_definition_and_nan() -> None:
    null = np.array([0.1, 0.2, 0.3, np.nan])
    assert nulls.p_value_greater(0.25, null) == pytest.approx((1 + 1) / (3 + 1))
    assert nulls.p_value_greater(0.3, null) == pytest.approx((1 + 1) / 4)  # ties count as extreme
    assert nulls.p_value_greater(1.0, null) == pytest.approx(1 / 4)
    assert np.isnan(nulls.p_value_greater(np.nan, null))
    assert np.isnan(nulls.p_value_greater(0.1, np.array([np.nan])))
    res = nulls.summarize_null(0.25, null)
    assert res.n_null == 3 and res.null_mean == pytest.approx(0.2) and res.null_sd == pytest.approx(0.1)
    assert set(res.as_row("shift")) == {"shift_null_mean", "shift_null_sd", "p_shift"}


def test_circular_shifts_respect_minimum_and_are_seeded() -> None:
    m = nulls.min_shift_frames(min_shift_s=1.0, frame_rate_hz=50.0)
    assert m == 50
    assert nulls.min_shift_frames(min_shift_s=1.0, frame_rate_hz=12.5) == 13
    shifts = nulls.draw_circular_shifts(
        n_frames=300, frame_rate_hz=50.0, n_shifts=5000, rng=np.random.default_rng(1)
    )
    assert shifts.min() >= 50 and shifts.max() <= 250
    assert set(np.unique(shifts)) == set(range(50, 251))  # uniform over the whole admissible range
    again = nulls.draw_circular_shifts(
        n_frames=300, frame_rate_hz=50.0, n_shifts=5000, rng=np.random.default_rng(1)
    )
    np.testing.assert_array_equal(shifts, again)
    # too short for a meaningful set of shifts → empty (NaN null)
    assert (
        nulls.draw_circular_shifts(n_frames=105, frame_rate_hz=50.0, rng=np.random.default_rng(0)).size == 0
    )
    idx = nulls.circular_shift_indices(np.array([3, 7]), 20)
    y = np.arange(40.0).reshape(20, 2)
    np.testing.assert_array_equal(y[idx[1]], np.roll(y, 7, axis=0))


def test_circular_shift_null_generic_and_batched_agree() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((120, 6)), rng.standard_normal((120, 4))
    a = nulls.circular_shift_null(
        eeg=x, model=y, frame_rate_hz=25.0, score=rsa, n_shifts=30, rng=np.random.default_rng(5)
    )
    b = nulls.circular_shift_null(
        eeg=x, model=y, frame_rate_hz=25.0, batch_score=batch_rsa, n_shifts=30, rng=np.random.default_rng(5)
    )
    np.testing.assert_allclose(a.null, b.null, atol=1e-10)
    assert a.observed == pytest.approx(rsa(x, y))
    assert a.p_value == b.p_value and a.n_null == 30
    short = nulls.circular_shift_null(eeg=x[:40], model=y[:40], frame_rate_hz=25.0, score=rsa, rng=rng)
    assert np.isnan(short.p_value) and np.isnan(short.null_mean) and short.n_null == 0


def test_rdm_fast_path_matches_scoring_reindexed_features() -> None:
    """Re-indexing model frames == permuting its RDM rows/columns jointly; ranks need not be recomputed."""
    rng = np.random.default_rng(3)
    t = 40
    x, y = rng.standard_normal((t, 5)), rng.standard_normal((t, 3))
    x[:, 0] = np.round(x[:, 0])  # ties in the EEG RDM exercise average ranks
    perms = nulls.draw_frame_permutations(n_frames=t, n_perm=12, rng=rng)
    shifts = nulls.circular_shift_indices(np.array([5, 11, 20]), t)
    per_channel = np.stack([pdist(x[:, [c]], "cityblock") for c in range(5)])  # |x_i − x_j| per electrode
    for idx in (perms, shifts):
        obs, null = nulls.rdm_spearman_permutation_null(
            eeg_rdm=pdist(x, "correlation"), model_rdm=pdist(y, "correlation"), indices=idx
        )
        ref = [rsa(x, y[i]) for i in idx]
        np.testing.assert_allclose(null, ref, atol=1e-10)
        assert obs == pytest.approx(rsa(x, y))
        obs_c, null_c = nulls.rdm_spearman_permutation_null(
            eeg_rdm=per_channel, model_rdm=pdist(y, "correlation"), indices=idx
        )
        assert null_c.shape == (5, idx.shape[0])
        assert obs_c[2] == pytest.approx(stats.spearmanr(per_channel[2], pdist(y, "correlation"))[0])
        ref_c = [stats.spearmanr(per_channel[2], pdist(y[i], "correlation"))[0] for i in idx]
        np.testing.assert_allclose(null_c[2], ref_c, atol=1e-10)
    const = np.ones(t * (t - 1) // 2)
    obs, null = nulls.rdm_spearman_permutation_null(
        eeg_rdm=const, model_rdm=pdist(y, "correlation"), indices=perms
    )
    assert np.isnan(obs) and np.all(np.isnan(null))


def test_frame_permutation_null_codefaithful_is_seeded() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    a = nulls.frame_permutation_null_codefaithful(
        eeg=x, model=y, score=rsa, n_perm=20, rng=np.random.default_rng(9)
    )
    b = nulls.frame_permutation_null_codefaithful(
        eeg=x, model=y, score=rsa, n_perm=20, rng=np.random.default_rng(9)
    )
    np.testing.assert_array_equal(a.null, b.null)
    perms = nulls.draw_frame_permutations(n_frames=30, n_perm=20, rng=np.random.default_rng(9))
    assert np.all(np.sort(perms, axis=1) == np.arange(30))


def test_resample_time_identity_and_linear_exactness() -> None:
    x = np.random.default_rng(0).standard_normal((17, 3))
    np.testing.assert_allclose(nulls.resample_time(x, 17), x)
    ramp = np.linspace(0.0, 1.0, 10)[:, None] * np.array([1.0, -2.0])
    out = nulls.resample_time(ramp, 25)
    # a linear signal stays linear inside the hull of the old frame centres
    inner = out[2:-2]
    np.testing.assert_allclose(np.diff(inner, 2, axis=0), 0.0, atol=1e-12)


def test_mismatch_matrix_crop_and_derangements() -> None:
    rng = np.random.default_rng(6)
    lengths = [30, 40, 25, 50]
    eeg = [rng.standard_normal((t, 4)) for t in lengths]
    mod = [rng.standard_normal((t, 3)) for t in lengths]
    mat = nulls.mismatch_score_matrix(eeg=eeg, model=mod, score=rsa)
    assert mat[1, 3] == pytest.approx(rsa(eeg[1][:25], mod[3][:25]))  # cropped to the shortest, from onset
    fast = nulls.mismatch_score_matrix(eeg=eeg, model=mod, score_matrix=rsa_matrix)
    np.testing.assert_allclose(mat, fast, atol=1e-10)
    longer = nulls.mismatch_score_matrix(eeg=eeg, model=mod, score=rsa, n_common=35)
    assert np.all(np.isnan(longer[0])) and np.all(np.isnan(longer[:, 2]))  # too short → excluded
    assert longer[1, 3] == pytest.approx(rsa(eeg[1][:35], mod[3][:35]))
    der = nulls.draw_derangements(n_items=6, n_perm=500, rng=rng)
    assert der.shape == (500, 6) and np.all(der != np.arange(6))
    assert np.all(np.sort(der, axis=1) == np.arange(6))
    res = nulls.sentence_mismatch_null(mat, rng=np.random.default_rng(1), n_perm=200)
    assert res.observed == pytest.approx(np.mean(np.diag(mat)))
    perms = np.argsort(np.random.default_rng(1).random((200, 4)), axis=1)  # uniform permutations
    np.testing.assert_allclose(res.null, mat[np.arange(4), perms].mean(axis=1))
    der_res = nulls.sentence_mismatch_null(mat, rng=rng, n_perm=200, derangements=True)
    # with derangements every null draw is a mean of off-diagonal entries only
    off = mat[~np.eye(4, dtype=bool)]
    assert der_res.null.min() >= off.min() - 1e-12 and der_res.null.max() <= off.max() + 1e-12
    # a sentence too short for the common length is left out of both means
    part = nulls.sentence_mismatch_null(longer, rng=rng, n_perm=50)
    assert part.observed == pytest.approx(np.mean([longer[1, 1], longer[3, 3]]))


def test_per_sentence_mismatch_crop_pairs_only_longer_sentences() -> None:
    rng = np.random.default_rng(7)
    lengths = [30, 40, 25, 50, 40]
    eeg = [rng.standard_normal((t, 4)) for t in lengths]
    mod = [rng.standard_normal((t, 3)) for t in lengths]
    res = nulls.sentence_mismatch_scores(eeg=eeg, model=mod, score=rsa)
    fast = nulls.sentence_mismatch_scores(eeg=eeg, model=mod, batch_score=batch_rsa)
    for s in range(5):
        np.testing.assert_allclose(res.null[s], fast.null[s], atol=1e-10)
        assert res.observed[s] == pytest.approx(rsa(eeg[s], mod[s]))  # native length, not cropped
        assert all(lengths[o] >= lengths[s] and o != s for o in res.partners[s])
    assert list(res.partners[1]) == [3, 4]
    assert res.null[1][0] == pytest.approx(rsa(eeg[1], mod[3][:40]))
    per = nulls.sentence_mismatch_null_per_sentence(res)
    assert np.isnan(per[3].p_value)  # the longest sentence has no partner
    assert per[2].n_null == 4 and per[2].p_value >= 1 / 5
    capped = nulls.sentence_mismatch_scores(eeg=eeg, model=mod, score=rsa, n_mismatch=2, rng=rng)
    assert all(p.size <= 2 for p in capped.partners)
    interp = nulls.sentence_mismatch_scores(eeg=eeg, model=mod, score=rsa, length_mode="interpolate")
    assert np.all(interp.n_frames == 40) and all(p.size == 4 for p in interp.partners)


def test_sentence_null_table_rows_are_direct_calls_and_per_sentence_seeded() -> None:
    rng = np.random.default_rng(8)
    lengths = {3: 90, 5: 110, 8: 100, 9: 130}
    eeg = {sid: rng.standard_normal((t, 4)) for sid, t in lengths.items()}
    mod = {sid: rng.standard_normal((t, 3)) for sid, t in lengths.items()}
    kw = {"frame_rate_hz": 25.0, "seed": 42, "n_shifts": 25, "n_perm_codefaithful": 25}
    table = nulls.sentence_null_table(eeg=eeg, model=mod, batch_score=batch_rsa, **kw)
    assert list(table.sentence_id) == [3, 5, 8, 9]
    assert {"value", "null_mean", "null_sd", "p_shift", "p_mismatch", "p_frameperm_codefaithful"} <= set(
        table.columns
    )
    row = table.set_index("sentence_id").loc[8]
    assert row["value"] == pytest.approx(rsa(eeg[8], mod[8]))
    shift = nulls.circular_shift_null(
        eeg=eeg[8], model=mod[8], frame_rate_hz=25.0, score=rsa, n_shifts=25,
        rng=np.random.default_rng(derive_seed(42, "shift", 8)),
    )  # fmt: skip
    assert row["p_shift"] == pytest.approx(shift.p_value) and row["shift_null_mean"] == pytest.approx(
        shift.null_mean
    )
    # partners of sentence 8 (T = 100) are 5 and 9, cut to 100 frames; mismatch is the default baseline
    ref = [rsa(eeg[8], mod[5][:100]), rsa(eeg[8], mod[9][:100])]
    assert row["n_mismatch"] == 2 and row["null_mean"] == pytest.approx(np.mean(ref))
    assert np.isnan(table.set_index("sentence_id").loc[9, "p_mismatch"])  # longest: no partner
    # a sentence's shift and frame-permutation nulls do not depend on which other sentences are present
    fewer = nulls.sentence_null_table(
        eeg={k: v for k, v in eeg.items() if k != 3}, model={k: v for k, v in mod.items() if k != 3},
        batch_score=batch_rsa, **kw,
    ).set_index("sentence_id")  # fmt: skip
    assert fewer.loc[8, "p_shift"] == row["p_shift"]
    assert fewer.loc[8, "p_frameperm_codefaithful"] == row["p_frameperm_codefaithful"]


# --------------------------------------------------------------------------------------------------
# calibration on independent smooth signals


def _simulate_null_pvalues(
    rng: np.random.Generator,
    n_sim: int,
    *,
    cut_eeg: float,
    cut_model: float,
    t_range: tuple[int, int],
    which: tuple[str, ...] = ("shift", "frameperm", "mismatch_crop"),
    rate_hz: float = FS,
    n_sent: int = 10,
    n_null: int = 99,
) -> dict[str, np.ndarray]:
    """One-sided p-values of the chosen nulls on independent (H0-true) EEG-like and model-like signals."""
    sos_e = signal.butter(4, cut_eeg, fs=rate_hz, output="sos")
    sos_m = signal.butter(4, cut_model, fs=rate_hz, output="sos")
    out: dict[str, list[float]] = {k: [] for k in which}
    for _ in range(n_sim):
        lengths = rng.integers(t_range[0], t_range[1] + 1, size=n_sent)
        eeg = [smooth_noise(rng, sos_e, t, 16) for t in lengths]
        mod = [smooth_noise(rng, sos_m, t, 20) for t in lengths]
        t0 = int(lengths[0])
        er, mr = pdist(eeg[0], "correlation"), pdist(mod[0], "correlation")
        if "shift" in which:
            shifts = nulls.draw_circular_shifts(
                n_frames=t0, frame_rate_hz=rate_hz, min_shift_s=1.0, n_shifts=n_null, rng=rng
            )
            obs, null = nulls.rdm_spearman_permutation_null(
                eeg_rdm=er, model_rdm=mr, indices=nulls.circular_shift_indices(shifts, t0)
            )
            out["shift"].append(nulls.summarize_null(obs, null).p_value)
        if "frameperm" in which:
            perms = nulls.draw_frame_permutations(n_frames=t0, n_perm=n_null, rng=rng)
            obs, null = nulls.rdm_spearman_permutation_null(eeg_rdm=er, model_rdm=mr, indices=perms)
            out["frameperm"].append(nulls.summarize_null(obs, null).p_value)
        for mode in ("crop", "interpolate"):
            if f"mismatch_{mode}" in which:
                mat = nulls.mismatch_score_matrix(
                    eeg=eeg, model=mod, score_matrix=rsa_matrix, length_mode=mode
                )
                out[f"mismatch_{mode}"].append(
                    nulls.sentence_mismatch_null(mat, rng=rng, n_perm=n_null).p_value
                )
    return {k: np.asarray(v) for k, v in out.items()}


def _fpr(p: np.ndarray) -> float:
    # a NaN p-value (no admissible shift) is not a rejection
    return float(np.mean(np.nan_to_num(p, nan=1.0) < 0.05))


def test_calibration_false_positive_rates() -> None:
    """At α = 0.05 our nulls reject 2–8 % of independent smooth signal pairs; frame permutation far more.

    Sentences of 4–6 s at 25 frames/s (100–150 frames), EEG-like noise low-passed at 4 Hz (16 channels),
    model-like noise at 8 Hz (20 dims). Circular shift: one sentence, shifts ≥ 1 s. Mismatch: mean RSA
    over 10 sentences against random permutations of the model sentences, all cropped to the shortest.
    With 1000 simulations (seed 123) the rates were shift 0.056, mismatch 0.038, frame permutation 0.556
    (0.061, 0.042 and 0.949 at 50 frames/s with 200–300 frames).
    """
    p = _simulate_null_pvalues(
        np.random.default_rng(20260105), 300, cut_eeg=4.0, cut_model=8.0, t_range=(100, 150), rate_hz=25.0
    )
    rates = {k: _fpr(v) for k, v in p.items()}
    print("false-positive rates at alpha=0.05 (300 simulations):", rates)
    assert 0.02 <= rates["shift"] <= 0.08
    assert 0.02 <= rates["mismatch_crop"] <= 0.08
    assert rates["frameperm"] > 0.2  # the paper's frame permutation (bug B19)


def test_interpolated_mismatch_is_biased_when_lengths_vary() -> None:
    """Very smooth signals, 2–4 s sentences: stretching to a common length breaks the mismatch null, cropping does not.

    With 600 simulations (seed 321): interpolate 0.275, crop 0.045 (circular shift 0.093 here: the
    rotation seam and the narrow band of admissible shifts make it liberal for short, very smooth sentences).
    """
    p = _simulate_null_pvalues(
        np.random.default_rng(7), 200, cut_eeg=3.0, cut_model=3.0, t_range=(50, 100), rate_hz=25.0,
        which=("mismatch_crop", "mismatch_interpolate"),
    )  # fmt: skip
    rates = {k: _fpr(v) for k, v in p.items()}
    print("very smooth, 2-4 s sentences (200 simulations):", rates)
    assert rates["mismatch_interpolate"] > 0.15
    assert 0.02 <= rates["mismatch_crop"] <= 0.08
