"""TNC: neighbour sets against brute force, hand-checked scores, null calibration, planted-structure recovery."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hearlike import prosody_step, tnc
from hearlike.io import read_tsv, save_npz_dict, write_tsv

# ----------------------------------------------------------------------------------------- brute-force refs


def brute_distance(X: np.ndarray) -> np.ndarray:
    n = X.shape[0]
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            a, b = X[i] - X[i].mean(), X[j] - X[j].mean()
            D[i, j] = 1.0 - float(a @ b) / np.sqrt(float(a @ a) * float(b @ b))
    return D


def brute_neighbours(D: np.ndarray, k: int, w: int = 0) -> list[list[int]]:
    out = []
    for i in range(D.shape[0]):
        candidates = [(round(D[i, j], tnc.TIE_DECIMALS), j) for j in range(D.shape[0]) if abs(i - j) > w]
        out.append([j for _, j in sorted(candidates)[:k]])
    return out


def clustered(gen: np.random.Generator, membership: np.ndarray, *, d: int = 20, sep: float = 2.0) -> np.ndarray:
    """Descriptors whose rows cluster by ``membership`` (one random centre per cluster, unit noise)."""
    centres = gen.normal(scale=sep, size=(membership.max() + 1, d))
    return centres[membership] + gen.normal(size=(membership.size, d))


# --------------------------------------------------------------------------------------------- neighbourhoods


def test_correlation_distance_matches_pairwise_pearson() -> None:
    X = np.random.default_rng(0).normal(size=(9, 7))
    np.testing.assert_allclose(tnc.correlation_distance(X), brute_distance(X), atol=1e-12)
    np.testing.assert_allclose(tnc.correlation_distance(X), 1 - np.corrcoef(X), atol=1e-12)
    # invariant to shifting and positively scaling each row
    gen = np.random.default_rng(1)
    Y = X * gen.uniform(0.5, 3, size=(9, 1)) + gen.normal(size=(9, 1))
    np.testing.assert_allclose(tnc.correlation_distance(Y), tnc.correlation_distance(X), atol=1e-12)


def test_constant_row_has_nan_distances_and_sorts_last() -> None:
    X = np.random.default_rng(2).normal(size=(6, 5))
    X[2] = 4.0
    D = tnc.correlation_distance(X)
    assert np.isnan(D[2, [0, 1, 3, 4, 5]]).all() and np.isnan(D[[0, 1, 3], 2]).all()
    N = tnc.neighbour_sets(D, k=5)
    assert all(N[i, -1] == 2 for i in range(6) if i != 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neighbour_sets_match_brute_force_with_ties(seed: int) -> None:
    gen = np.random.default_rng(seed)
    X = gen.integers(0, 4, size=(14, 5)).astype(float) + np.arange(5) * 1e-3  # no constant rows
    X[5] = X[9]  # exact duplicates: identical distances to everyone
    X[11] = 2 * X[3] + 1  # same direction after centring: distance 0 to row 3
    D = brute_distance(X)
    N = tnc.neighbour_sets(tnc.correlation_distance(X), k=4)
    assert N.tolist() == brute_neighbours(D, 4)
    assert N[3, 0] == 11 and N[11, 0] == 3


def test_integer_distance_ties_go_to_the_lower_index() -> None:
    D = np.array([[0, 1, 1, 1, 2], [1, 0, 2, 2, 1], [1, 2, 0, 1, 1], [1, 2, 1, 0, 1], [2, 1, 1, 1, 0]], float)
    N = tnc.neighbour_sets(D, k=2)
    assert N.tolist() == [[1, 2], [0, 4], [0, 3], [0, 2], [1, 2]]
    assert N.tolist() == brute_neighbours(D, 2)


@pytest.mark.parametrize("w", [0, 1, 3])
def test_temporal_exclusion_matches_brute_force(w: int) -> None:
    X = np.random.default_rng(w).normal(size=(20, 6))
    D = tnc.correlation_distance(X)
    N = tnc.neighbour_sets(D, k=3, exclude_within=w)
    assert N.tolist() == brute_neighbours(D, 3, w)
    idx = np.arange(20)[:, None]
    assert (np.abs(N - idx) > w).all()


def test_too_few_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="fewer than k"):
        tnc.neighbour_sets(np.zeros((5, 5)), k=2, exclude_within=2)


def test_label_consistency_and_overlap_by_hand() -> None:
    labels = np.array([True, True, False, False, True, False])
    A = np.array([[1, 4], [0, 2], [3, 5], [2, 1], [0, 1], [3, 2]])
    E = np.array([[1, 2], [4, 0], [3, 1], [5, 2], [1, 0], [2, 3]])
    # c(0) in A: neighbours 1 (T), 4 (T) → 1; c(1): 0 (T), 2 (F) → .5; c(2): 3, 5 both F → 1; c(3): 2 F, 1 T → .5
    # c(4): 0 T, 1 T → 1; c(5): 3 F, 2 F → 1
    np.testing.assert_allclose(tnc.label_consistency(A, labels), [1, 0.5, 1, 0.5, 1, 1])
    # in E: c(0): 1 T, 2 F → .5; c(1): 4 T, 0 T → 1; c(2): 3 F, 1 T → .5; c(3): 5 F, 2 F → 1; c(4), c(5) → 1
    np.testing.assert_allclose(tnc.label_consistency(E, labels), [0.5, 1, 0.5, 1, 1, 1])
    # overlaps: {1,4}∩{1,2}={1}; {0,2}∩{4,0}={0}; {3,5}∩{3,1}={3}; {2,1}∩{5,2}={2}; {0,1}∩{1,0}=both; {3,2}∩{2,3}
    np.testing.assert_allclose(tnc.neighbourhood_overlap(A, E), [0.5, 0.5, 0.5, 0.5, 1, 1])
    M = np.array([[4, 5], [0, 3], [1, 3], [2, 4], [1, 0], [0, 4]])
    # triple: row 0 {1,4}∩{1,2}∩{4,5} = ∅; row 1 {0,2}∩{4,0}∩{0,3} = {0}; row 2 {3,5}∩{3,1}∩{1,3} = {3};
    # row 3 {2,1}∩{5,2}∩{2,4} = {2}; row 4 {0,1}∩{1,0}∩{1,0} = both; row 5 {3,2}∩{2,3}∩{0,4} = ∅
    np.testing.assert_allclose(tnc.neighbourhood_overlap(A, E, M), [0, 0.5, 0.5, 0.5, 1, 0])


def test_overlap_chance_levels() -> None:
    assert tnc.overlap_chance(84, 5) == pytest.approx((5 / 83, (5 / 83) ** 2))
    pair, _ = tnc.overlap_chance(200, 4, exclude_within=10)
    assert pair == pytest.approx(4 / (200 - 1 - 20), rel=0.03)  # edges have more candidates, hence ≈
    # Monte Carlo: independent random spaces reach the chance overlap on average
    gen = np.random.default_rng(5)
    n, k = 40, 4
    vals = []
    for _ in range(60):
        sets = [tnc.neighbour_sets(tnc.correlation_distance(gen.normal(size=(n, 8))), k=k) for _ in range(2)]
        vals.append(tnc.neighbourhood_overlap(*sets).mean())
    assert np.mean(vals) == pytest.approx(k / (n - 1), rel=0.1)


def test_auto_k() -> None:
    assert tnc.auto_k(84) == 5 and tnc.auto_k(30) == 3 and tnc.auto_k(1) == 1
    assert tnc.resolve_k("auto", 100) == 5
    with pytest.raises(ValueError):
        tnc.resolve_k(10, 8)


# -------------------------------------------------------------------------------------------- sentence TNC


def test_groups_follow_the_definition() -> None:
    gen = np.random.default_rng(7)
    n = 40
    A, E, M = (gen.normal(size=(n, 10)) for _ in range(3))
    prov = gen.random(n) < 0.4
    out = tnc.tnc_labels(acoustic=A, eeg=E, model=M, provisional=prov, k=4, tau=0.5, n_permutations=0,
                         sentence_ids=np.arange(100, 100 + n))
    sets = {name: tnc.neighbour_sets(tnc.correlation_distance(x), k=4) for name, x in
            {"acoustic": A, "eeg": E, "model": M}.items()}
    for name, s in sets.items():
        np.testing.assert_allclose(out[f"c_{name}"], tnc.label_consistency(s, prov))
    np.testing.assert_allclose(out.tnc_label, out[["c_acoustic", "c_eeg", "c_model"]].min(axis=1))
    np.testing.assert_allclose(out.tnc_label_mean, out[["c_acoustic", "c_eeg", "c_model"]].mean(axis=1))
    expected = np.where(out.tnc_label >= 0.5, np.where(prov, "negative", "control"), "excluded")
    assert (out.group.to_numpy() == expected).all()
    assert out.sentence_id.tolist() == list(range(100, 100 + n))
    assert out.attrs["n_excluded"] == int((expected == "excluded").sum())
    assert out.p_label.isna().all()  # no permutations asked for
    # string labels are accepted
    out2 = tnc.tnc_labels(acoustic=A, eeg=E, model=M, provisional=np.where(prov, "negative", "other"), k=4,
                          tau=0.5, n_permutations=0)
    pd.testing.assert_series_equal(out.tnc_label, out2.tnc_label)


def test_reordering_sentences_reorders_the_result() -> None:
    gen = np.random.default_rng(8)
    n = 30
    A, E, M = (gen.normal(size=(n, 6)) for _ in range(3))
    prov = gen.random(n) < 0.5
    perm = gen.permutation(n)
    cols = ["c_acoustic", "c_eeg", "c_model", "tnc_label", "tnc_overlap", "tnc_overlap_triple", "group"]
    a = tnc.tnc_labels(acoustic=A, eeg=E, model=M, provisional=prov, k=3, tau=0.5, n_permutations=0)
    b = tnc.tnc_labels(acoustic=A[perm], eeg=E[perm], model=M[perm], provisional=prov[perm], k=3, tau=0.5,
                       n_permutations=0, sentence_ids=perm + 1)
    pd.testing.assert_frame_equal(a.iloc[perm][cols].reset_index(drop=True), b[cols])


def test_tnc_recovers_a_planted_negative_set() -> None:
    gen = np.random.default_rng(11)
    n, n_neg = 90, 30
    truth = np.zeros(n, dtype=bool)
    truth[gen.choice(n, n_neg, replace=False)] = True
    # negatives share one cluster in every space; the others scatter over three clusters
    membership = np.where(truth, 0, gen.integers(1, 4, size=n))
    A, E, M = (clustered(gen, membership, sep=1.5) for _ in range(3))
    flipped = gen.random(n) < 0.2
    prov = truth ^ flipped  # provisional labels are right 80 % of the time
    out = tnc.tnc_labels(acoustic=A, eeg=E, model=M, provisional=prov, k=5, tau=0.5, n_permutations=200, seed=3)
    neg = out.group.to_numpy() == "negative"
    precision_tnc = truth[neg].mean()
    precision_prov = truth[prov].mean()
    # with 20 % label noise a correctly labelled negative passes all three spaces with p ≈ 0.9³ ≈ 0.7
    assert neg.sum() >= 0.6 * (truth & ~flipped).sum()
    assert precision_tnc > max(precision_prov, truth.mean()) and precision_tnc >= 0.9
    control = out.group.to_numpy() == "control"
    assert (~truth[control]).mean() >= 0.9
    # sentences whose provisional label was flipped are mostly excluded
    assert (out.group.to_numpy()[flipped] == "excluded").mean() > 0.6
    # p_label is small for correctly labelled negatives, large for the flipped ones
    assert np.median(out.p_label[truth & ~flipped]) < 0.05
    assert np.median(out.p_label[flipped]) > 0.3
    agreement = tnc.neighbourhood_agreement_null(acoustic=A, eeg=E, model=M, k=5, n_permutations=200, seed=3)
    row = agreement.set_index("statistic").loc["overlap_mean"]
    assert row.observed > 2 * row.chance and row.p_value == pytest.approx(1 / 201)
    labels_null = tnc.label_consistency_null(acoustic=A, eeg=E, model=M, provisional=prov, k=5,
                                             n_permutations=200, seed=3)
    assert labels_null.set_index("statistic").loc["tnc_label", "p_value"] == pytest.approx(1 / 201)


# ------------------------------------------------------------------------------------------ permutation null


def test_agreement_null_is_calibrated_on_independent_spaces() -> None:
    n, k, B, n_seeds = 30, 3, 99, 300
    p_mean, p_triple, p_label = [], [], []
    for seed in range(n_seeds):
        gen = np.random.default_rng(1000 + seed)
        A, E, M = (gen.normal(size=(n, 8)) for _ in range(3))
        null = tnc.neighbourhood_agreement_null(acoustic=A, eeg=E, model=M, k=k, n_permutations=B, seed=seed)
        null = null.set_index("statistic")
        p_mean.append(null.loc["overlap_mean", "p_value"])
        p_triple.append(null.loc["overlap_triple", "p_value"])
        assert np.isnan(null.loc["overlap_AE", "p_value"])  # A and E are not permuted: no null for them
        if seed < 100:
            prov = gen.random(n) < 0.4
            lab = tnc.label_consistency_null(acoustic=A, eeg=E, model=M, provisional=prov, k=k,
                                             n_permutations=B, seed=seed)
            p_label.append(lab.set_index("statistic").loc["tnc_label", "p_value"])
    p_mean = np.asarray(p_mean)
    fpr = np.mean(p_mean <= 0.05)
    assert 0.015 <= fpr <= 0.09, fpr
    assert np.mean(p_mean) == pytest.approx(0.5, abs=0.06)
    # discrete statistics make p slightly conservative; the distribution is still close to uniform
    assert stats.kstest(p_mean, "uniform").statistic < 0.12
    assert np.mean(np.asarray(p_triple) <= 0.05) <= 0.09
    assert np.mean(np.asarray(p_label) <= 0.05) <= 0.12


def test_agreement_null_detects_structure_shared_by_two_spaces_only_when_they_are_tested() -> None:
    gen = np.random.default_rng(21)
    membership = gen.integers(0, 5, size=50)
    A = clustered(gen, membership)
    E = clustered(gen, membership)
    M = gen.normal(size=(50, 20))  # the model shares nothing
    res = tnc.neighbourhood_agreement_null(acoustic=A, eeg=E, model=M, k=4, n_permutations=199, seed=0,
                                           permute=("eeg", "model")).set_index("statistic")
    assert res.loc["overlap_AE", "p_value"] <= 0.01
    assert res.loc["overlap_AM", "p_value"] > 0.01 and res.loc["overlap_EM", "p_value"] > 0.01
    again = tnc.neighbourhood_agreement_null(acoustic=A, eeg=E, model=M, k=4, n_permutations=199, seed=0,
                                             permute=("eeg", "model")).set_index("statistic")
    pd.testing.assert_frame_equal(res, again)  # seeded


# ---------------------------------------------------------------------------------------- frame-level version


def test_frame_overlap_matches_brute_force_and_limits() -> None:
    gen = np.random.default_rng(4)
    T, k, w = 25, 3, 2
    R = [tnc.correlation_distance(gen.normal(size=(T, 6))) for _ in range(3)]
    res = tnc.frame_neighbourhood_overlap(rdm_acoustic=R[0], rdm_eeg=R[1], rdm_model=R[2], k=k, exclude_within=w)
    nb = [brute_neighbours(r, k, w) for r in R]
    pairs = {"overlap_AE": (0, 1), "overlap_AM": (0, 2), "overlap_EM": (1, 2)}
    for key, (a, b) in pairs.items():
        expected = np.mean([len(set(nb[a][i]) & set(nb[b][i])) / k for i in range(T)])
        assert res[key] == pytest.approx(expected)
    triple = np.mean([len(set(nb[0][i]) & set(nb[1][i]) & set(nb[2][i])) / k for i in range(T)])
    assert res["overlap_triple"] == pytest.approx(triple)
    assert res["overlap_mean"] == pytest.approx(np.mean([res[key] for key in pairs]))
    same = tnc.frame_neighbourhood_overlap(rdm_acoustic=R[0], rdm_eeg=R[0], rdm_model=R[0], k=k, exclude_within=w)
    assert same["overlap_mean"] == 1.0 and same["overlap_triple"] == 1.0
    tiny = tnc.frame_neighbourhood_overlap(rdm_acoustic=R[0][:6, :6], rdm_eeg=R[1][:6, :6],
                                           rdm_model=R[2][:6, :6], k=3, exclude_within=2)
    assert np.isnan(tiny["overlap_mean"]) and np.isnan(tiny["chance"])
    with pytest.raises(ValueError, match="same T"):
        tnc.frame_neighbourhood_overlap(rdm_acoustic=R[0], rdm_eeg=R[1][:5, :5], rdm_model=R[2], k=k)


# -------------------------------------------------------------------------------------------- paper's score


def upper(r: np.ndarray) -> np.ndarray:
    return r[np.triu_indices(r.shape[0], 1)]


def rdm_from(x: np.ndarray) -> np.ndarray:
    return np.abs(x[:, None] - x[None, :])


def test_paper_partial_correlation_equals_partial_spearman_by_residuals() -> None:
    gen = np.random.default_rng(9)
    base = gen.normal(size=(18, 4))
    P = tnc.correlation_distance(base + 0.5 * gen.normal(size=base.shape))
    M = tnc.correlation_distance(base + 1.0 * gen.normal(size=base.shape))
    E = tnc.correlation_distance(base + 0.8 * gen.normal(size=base.shape))
    r_pe, r_pm, r_me, r_pe_m, score = tnc.paper_tnc_partial_correlation(P, E, M)
    rp, re, rm = (stats.rankdata(upper(x)) for x in (P, E, M))
    assert r_pe == pytest.approx(stats.spearmanr(upper(P), upper(E))[0])
    assert r_pm == pytest.approx(stats.spearmanr(upper(P), upper(M))[0])
    assert r_me == pytest.approx(stats.spearmanr(upper(M), upper(E))[0])
    design = np.column_stack([np.ones_like(rm), rm])
    resid = [y - design @ np.linalg.lstsq(design, y, rcond=None)[0] for y in (rp, re)]
    assert r_pe_m == pytest.approx(np.corrcoef(*resid)[0, 1])
    assert score == pytest.approx(1 - r_pe_m**2 / r_pe**2)


def test_paper_score_mediation_and_degenerate_branches() -> None:
    gen = np.random.default_rng(10)
    # chain P → M → E: M carries all of P's information about E, so the partial correlation is ≈ 0
    p = gen.normal(size=60)
    m = p + 0.05 * gen.normal(size=60)
    e = m + 0.6 * gen.normal(size=60)
    *_, r_pe_m, score = tnc.paper_tnc_partial_correlation(rdm_from(p), rdm_from(e), rdm_from(m))
    assert abs(r_pe_m) < 0.2 and score > 0.9
    # model identical to prosody: r_pm = 1, the partial correlation divides by 0 → NaN, not 0
    out = tnc.paper_tnc_partial_correlation(rdm_from(p), rdm_from(e), rdm_from(p))
    assert out[1] == pytest.approx(1.0) and np.isnan(out[3]) and np.isnan(out[4])
    # constant prosody RDM: every correlation with it is undefined
    flat = np.ones((60, 60)) - np.eye(60)
    out = tnc.paper_tnc_partial_correlation(flat, rdm_from(e), rdm_from(m))
    assert np.isnan(out[0]) and np.isnan(out[4])
    with pytest.raises(ValueError, match="same T"):
        tnc.paper_tnc_partial_correlation(rdm_from(p), rdm_from(e[:30]), rdm_from(m))


# -------------------------------------------------------------------------------------------- descriptors


def test_pca_reduce_keeps_distances_and_is_deterministic() -> None:
    X = np.random.default_rng(12).normal(size=(15, 40))
    Z = tnc.pca_reduce(X, n_components=20)
    assert Z.shape == (15, 14)  # at most n − 1 components carry variance
    d_x = np.linalg.norm(X[:, None] - X[None], axis=2)
    d_z = np.linalg.norm(Z[:, None] - Z[None], axis=2)
    np.testing.assert_allclose(d_z, d_x, atol=1e-9)
    np.testing.assert_array_equal(Z, tnc.pca_reduce(X.copy(), n_components=20))
    assert tnc.pca_reduce(X, n_components=3).shape == (15, 3)


def test_eeg_rdm_vector_block_means() -> None:
    gen = np.random.default_rng(13)
    x = gen.normal(size=(8, 5))
    D = tnc.correlation_distance(x)
    np.testing.assert_allclose(tnc.eeg_rdm_vector(x, grid=8), upper(D))
    v = tnc.eeg_rdm_vector(x, grid=4)  # T = 2·grid: 2×2 block means
    blocks = np.array([[D[2 * a:2 * a + 2, 2 * b:2 * b + 2].mean() for b in range(4)] for a in range(4)])
    np.testing.assert_allclose(v, upper(blocks))
    assert tnc.eeg_rdm_vector(gen.normal(size=(5, 5)), grid=32).shape == (32 * 31 // 2,)


def test_descriptors_follow_the_requested_sentence_order() -> None:
    gen = np.random.default_rng(14)
    ids = [5, 2, 9, 7]
    feats = {sid: gen.normal(size=(gen.integers(20, 40), 12)) for sid in ids}
    M = tnc.model_descriptor(features=feats, sentence_ids=ids, n_components=20)
    pooled = np.vstack([feats[s].mean(axis=0) for s in ids])
    ref = pooled - pooled.mean(axis=0)
    np.testing.assert_allclose(np.linalg.norm(M[:, None] - M[None], axis=2),
                               np.linalg.norm(ref[:, None] - ref[None], axis=2), atol=1e-9)
    eeg = {"01": {s: gen.normal(size=(30, 6)) for s in ids}, "02": {s: gen.normal(size=(30, 6)) for s in ids[:3]}}
    E = tnc.eeg_descriptor(eeg=eeg, sentence_ids=ids, method="mean")
    assert E.shape == (4, 3)
    E_rdm = tnc.eeg_descriptor(eeg=eeg, sentence_ids=ids)
    assert E_rdm.shape == (4, 3) and np.isfinite(E_rdm).all()
    with pytest.raises(KeyError, match="sentence 3"):
        tnc.eeg_descriptor(eeg=eeg, sentence_ids=[3])
    table = pd.DataFrame({"sentence_id": [2, 5, 7, 9], "pitch_level_st": [1.0, 2.0, 3.0, 4.0],
                          "speaking_rate": [2.0, 2.0, 2.0, 2.0], "intensity_mean_db": [60.0, np.nan, 70.0, 65.0]})
    A = tnc.acoustic_descriptor(features=table, sentence_ids=ids)
    assert A.shape == (4, 2)  # the constant rate column is dropped
    np.testing.assert_allclose(A[:, 0], (np.array([2.0, 1.0, 4.0, 3.0]) - 2.5) / np.std([1, 2, 3, 4], ddof=1))
    assert A[0, 1] == 0.0  # missing intensity of sentence 5 → dataset mean


# ------------------------------------------------------------------------------------------- the workflow step


def _prosody_table(n: int, negatives: int, gen: np.random.Generator) -> pd.DataFrame:
    table = pd.DataFrame(gen.normal(size=(n, 4)), columns=["f0_mean_st", "intensity_mean_db", "speaking_rate",
                                                           "pitch_range_st"])
    table.insert(0, "sentence_id", np.arange(1, n + 1))
    table["provisional_label"] = ["negative"] * negatives + ["other"] * (n - negatives)
    return table


def test_tnc_step_with_too_few_sentences_writes_reason_tables(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """3 sentences cannot have 5 neighbours: full tables, every sentence excluded, a reason, a WARNING."""
    write_tsv(_prosody_table(3, 1, np.random.default_rng(0)), tmp_path / "prosody.tsv")
    with caplog.at_level(logging.WARNING, logger="hearlike.prosody_step"):
        prosody_step.tnc_step(prosody=tmp_path / "prosody.tsv", segments=[], profile=tmp_path / "absent.tsv",
                              activations=[], tnc={"k": 5, "tau": 0.5, "n_permutations": 10, "model_layer": "best"},
                              seed=0, out_labels=tmp_path / "tnc.tsv", out_null=tmp_path / "tnc_null.tsv")
    labels, null = read_tsv(tmp_path / "tnc.tsv"), read_tsv(tmp_path / "tnc_null.tsv")
    assert list(labels.columns) == ["sentence_id", "model", "layer", *tnc.LABEL_COLUMNS[1:], "reason"]
    assert len(labels) == 3 and (labels["group"] == "excluded").all() and labels["tnc_label"].isna().all()
    assert list(labels["provisional_label"]) == ["negative", "other", "other"]
    assert labels["reason"].eq("3 sentence(s): k = 5 nearest neighbours need at least 6").all()
    assert list(null.columns) == [*tnc.AGREEMENT_NULL_COLUMNS, "reason"] and len(null) == 5
    assert null["observed"].isna().all() and null["reason"].notna().all()
    assert any(r.levelno == logging.WARNING and "TNC not computed" in r.getMessage() for r in caplog.records)
    assert tnc.too_few_items("auto", 1) is not None and tnc.too_few_items("auto", 2) is None


def test_tnc_step_warns_when_it_calls_fewer_than_two_sentences_negative(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hearlike.models.cache import write_layer

    gen = np.random.default_rng(1)
    n = 12
    write_tsv(_prosody_table(n, 1, gen), tmp_path / "prosody.tsv")
    save_npz_dict(tmp_path / "sub-01.npz", {f"s{sid:04d}": gen.normal(size=(4, 200)) for sid in range(1, n + 1)},
                  meta={"subject": "01", "sfreq": 100.0})
    write_layer(tmp_path / "act" / "m" / "llm.00.safetensors",
                {sid: (gen.normal(size=(5, 8)), np.column_stack([np.arange(5) * 0.02, np.arange(1, 6) * 0.02]))
                 for sid in range(1, n + 1)}, store_dtype="float32")
    write_tsv(pd.DataFrame({"model": ["m"]}), tmp_path / "profile.tsv")
    with caplog.at_level(logging.WARNING, logger="hearlike.prosody_step"):
        labels = prosody_step.tnc_step(
            prosody=tmp_path / "prosody.tsv", segments=[tmp_path / "sub-01.npz"], profile=tmp_path / "profile.tsv",
            activations=[tmp_path / "act" / "m"], tnc={"k": 3, "tau": 0.5, "n_permutations": 5,
                                                       "model_layer": "m:llm.00"},
            seed=0, out_labels=tmp_path / "tnc.tsv", out_null=tmp_path / "tnc_null.tsv")
    # a lone provisional negative has no negative neighbours: TNC_label 0, so it is excluded
    assert (labels["group"] == "negative").sum() == 0 and labels["reason"].isna().all()
    written = read_tsv(tmp_path / "tnc.tsv")
    assert list(written.columns) == ["sentence_id", "model", "layer", *tnc.LABEL_COLUMNS[1:], "reason"]
    assert list(read_tsv(tmp_path / "tnc_null.tsv").columns) == [*tnc.AGREEMENT_NULL_COLUMNS, "reason"]
    assert any(r.levelno == logging.WARNING and "0 negative" in r.getMessage() for r in caplog.records)
