"""Subject-level statistics against reference implementations (scipy, mne) and brute force."""

from __future__ import annotations

from itertools import product

import mne
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hearlike import stats as hs


def test_fisher_z_clipping_and_back_transform() -> None:
    r = np.array([-0.9, 0.0, 0.5, np.nan])
    np.testing.assert_allclose(hs.fisher_z(r)[:3], np.arctanh(r[:3]))
    assert np.isnan(hs.fisher_z(r)[3])
    edge = hs.fisher_z(np.array([1.0, -1.0, 1.0 + 1e-9]))
    assert (
        np.all(np.isfinite(edge))
        and edge[0] == pytest.approx(np.arctanh(hs.FISHER_CLIP))
        and edge[1] == -edge[0]
    )
    np.testing.assert_allclose(hs.inverse_fisher_z(hs.fisher_z(r[:3])), r[:3])


def test_rank_average_and_standardized_ranks() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(3, 4, 40)).astype(float)
    np.testing.assert_allclose(hs.rank_average(x), stats.rankdata(x, axis=-1))
    a, b = rng.standard_normal(50), np.round(rng.standard_normal(50))
    assert hs.standardized_ranks(a) @ hs.standardized_ranks(b) == pytest.approx(stats.spearmanr(a, b)[0])
    assert np.all(np.isnan(hs.standardized_ranks(np.ones(5))))
    assert np.all(np.isnan(hs.standardized_ranks(np.array([1.0, np.nan, 2.0]))))


def _brute_force_p(x: np.ndarray, alternative: str) -> float:
    signs = np.array(list(product([-1.0, 1.0], repeat=x.size)))
    null = signs @ x / x.size
    obs = x.mean()
    if alternative == "greater":
        return float(np.mean(null >= obs - 1e-12))
    if alternative == "less":
        return float(np.mean(null <= obs + 1e-12))
    return float(np.mean(np.abs(null) >= abs(obs) - 1e-12))


@pytest.mark.parametrize("n", [5, 9, 12])
def test_sign_flip_exact_matches_brute_force_and_mne(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) + 0.4
    for alt in ("greater", "less", "two-sided"):
        res = hs.sign_flip_test(x, alternative=alt, n_perm=10000)
        assert res.exact and res.n_perm == 2**n
        assert res.p_value == pytest.approx(_brute_force_p(x, alt))
    # mne's one-sample permutation t-test (exact enumeration, two-sided): t is monotone in the mean
    # under sign flips (the sum of squares does not change), so the p-values coincide
    _, p_mne, _ = mne.stats.permutation_t_test(x[:, None], n_permutations=10**6, tail=0, verbose=False)
    assert hs.sign_flip_test(x, alternative="two-sided").p_value == pytest.approx(p_mne[0])


def test_sign_flip_monte_carlo_and_edge_cases() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(16) + 0.3
    exact = hs.sign_flip_test(x, n_perm=2**16)
    mc = hs.sign_flip_test(x, n_perm=20000, rng=np.random.default_rng(2))
    assert exact.exact and not mc.exact and mc.n_perm == 20000
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.01)
    assert mc.p_value == hs.sign_flip_test(x, n_perm=20000, rng=2).p_value  # int seed == Generator seed
    with pytest.raises(ValueError):
        hs.sign_flip_test(x, n_perm=100)  # Monte Carlo needs a seed
    withnan = hs.sign_flip_test(np.r_[x[:6], np.nan, np.nan], n_perm=1000)
    assert withnan.n_subjects == 6 and withnan.n_excluded == 2
    assert withnan.p_value == pytest.approx(_brute_force_p(x[:6], "greater"))
    assert np.isnan(hs.sign_flip_test([0.3]).p_value)
    shifted = hs.sign_flip_test(x[:8] + 1.0, null_value=1.0)
    assert shifted.p_value == pytest.approx(hs.sign_flip_test(x[:8]).p_value)


def test_sign_flip_is_calibrated_under_symmetric_null() -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_t(3, size=(2000, 10))
    p = np.array([hs.sign_flip_test(row).p_value for row in data])
    assert 0.035 <= np.mean(p < 0.05) <= 0.065
    assert stats.kstest(p, "uniform").pvalue > 0.001  # discrete (1/1024 grid) but close to uniform


def test_bootstrap_ci_against_scipy_and_nan_handling() -> None:
    rng = np.random.default_rng(4)
    x = rng.gamma(2.0, size=25)
    ours = hs.bootstrap_ci(x, n_boot=40000, rng=5, method="percentile")
    ref = stats.bootstrap((x,), np.mean, n_resamples=40000, method="percentile", rng=np.random.default_rng(6))
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.02)
    assert ours.estimate == pytest.approx(x.mean()) and ours.method == "percentile"
    again = hs.bootstrap_ci(x, n_boot=40000, rng=5, method="percentile")
    assert (again.ci_low, again.ci_high) == (ours.ci_low, ours.ci_high)
    nan = hs.bootstrap_ci(np.r_[x, np.nan], n_boot=2000, rng=0)
    assert nan.n_used == 25 and nan.n_excluded == 1 and np.isfinite(nan.ci_low)
    one = hs.bootstrap_ci([1.0, np.nan], rng=0)
    assert np.isnan(one.ci_low) and np.isnan(one.ci_high) and one.estimate == 1.0
    med = hs.bootstrap_ci(x, n_boot=2000, statistic=lambda a: np.median(a, axis=-1), rng=0, method="percentile")
    assert med.estimate == pytest.approx(np.median(x))
    with pytest.raises(ValueError, match="percentile"):
        hs.bootstrap_ci(x, statistic=lambda a: np.median(a, axis=-1), rng=0)
    with pytest.raises(ValueError, match="method"):
        hs.bootstrap_ci(x, rng=0, method="bca")  # type: ignore[arg-type]


def test_studentized_and_t_intervals_match_their_definitions() -> None:
    rng = np.random.default_rng(12)
    x = rng.exponential(size=8)
    t_int = hs.bootstrap_ci(x, method="t")  # no resampling, no rng needed
    ref = stats.t.interval(0.95, 7, loc=x.mean(), scale=stats.sem(x))
    assert (t_int.ci_low, t_int.ci_high) == pytest.approx(ref) and t_int.method == "t"
    # bootstrap-t by hand, from the same resampled subject positions
    res = hs.bootstrap_ci(x, n_boot=5000, rng=3)
    assert res.method == "studentized"
    idx = np.random.default_rng(3).integers(0, 8, size=(5000, 8))
    se = x.std(ddof=1) / np.sqrt(8)
    t_star = [(x[i].mean() - x.mean()) / (x[i].std(ddof=1) / np.sqrt(8)) for i in idx if np.ptp(x[i]) > 0]
    lo_q, hi_q = np.quantile(t_star, [0.025, 0.975])
    assert res.ci_low == pytest.approx(x.mean() - hi_q * se) and res.ci_high == pytest.approx(x.mean() - lo_q * se)
    # right-skewed data: the interval reaches further above the mean than below it
    assert res.ci_high - x.mean() > x.mean() - res.ci_low
    # fewer than MIN_STUDENTIZED_N subjects: the Student-t interval, and it says so
    small = hs.bootstrap_ci(x[:3], rng=0)
    assert small.method == "t" and small.ci_low == pytest.approx(hs.bootstrap_ci(x[:3], method="t").ci_low)
    # zero variance: NaN bounds (never a zero-width interval), whatever the method
    for method in ("studentized", "t", "percentile"):
        flat = hs.bootstrap_ci(np.full(6, 0.3), rng=0, method=method)
        assert flat.estimate == pytest.approx(0.3) and np.isnan(flat.ci_low) and np.isnan(flat.ci_high)


def test_bootstrap_ci_coverage() -> None:
    rng = np.random.default_rng(7)
    cover = []
    for _ in range(300):
        res = hs.bootstrap_ci(rng.standard_normal(30), n_boot=1000, rng=rng)
        cover.append(res.ci_low <= 0.0 <= res.ci_high)
    assert 0.92 <= np.mean(cover) <= 0.98


#: True mean (of z for the Fisher case) and a sampler per distribution of the small-n coverage checks.
_COVERAGE_CASES = {
    "normal_fisher": (0.3, lambda g, size: 0.3 + 0.2 * g.standard_normal(size)),
    "gamma": (2.0, lambda g, size: g.gamma(2.0, size=size)),  # skewness 1.4
}


def test_small_sample_coverage_of_bootstrap_ci_and_group_summary() -> None:
    """At 5, 7 and 10 subjects the default interval covers the true mean in ≥ 93% of 400 datasets.

    Checked on bootstrap_ci and on group_summary, the function the layer and window profiles use,
    for normal subject values in Fisher z (bounds back-transformed) and for right-skewed (gamma) values.
    """
    rng = np.random.default_rng(20)
    n_data = 400
    for n in (5, 7, 10):
        rows = []
        for name, (mu, draw) in _COVERAGE_CASES.items():
            data = draw(rng, (n_data, n))
            hits = [(r.ci_low <= mu <= r.ci_high) for r in (hs.bootstrap_ci(d, n_boot=2000, rng=rng) for d in data)]
            assert np.mean(hits) >= 0.93, (n, name, np.mean(hits))
            for i, d in enumerate(data):
                rows += [{"model": f"d{i:03d}", "layer": "l", "metric": name, "subject": f"s{s}", "value": v,
                          "baseline": np.nan, "fisher": name.endswith("fisher")} for s, v in enumerate(d)]
        summary = hs.group_summary(pd.DataFrame(rows), n_perm=16, n_boot=2000, seed=n)
        for name, (mu, _) in _COVERAGE_CASES.items():
            g = summary[summary["metric"] == name]
            target = np.tanh(mu) if name.endswith("fisher") else mu
            covered = (g["ci_low"] <= target) & (target <= g["ci_high"])
            assert len(g) == n_data and covered.mean() >= 0.93, (n, name, covered.mean())


def test_bh_fdr_matches_scipy() -> None:
    rng = np.random.default_rng(8)
    p = np.r_[rng.uniform(size=40), rng.uniform(0, 0.01, size=10)]
    np.testing.assert_allclose(hs.bh_fdr(p), stats.false_discovery_control(p, method="bh"))
    ties = np.array([0.01, 0.01, 0.02, 0.5, 0.5])
    np.testing.assert_allclose(hs.bh_fdr(ties), stats.false_discovery_control(ties, method="bh"))
    with_nan = np.r_[p[:5], np.nan, p[5:9]]
    q = hs.bh_fdr(with_nan)
    assert np.isnan(q[5])
    np.testing.assert_allclose(
        np.delete(q, 5), stats.false_discovery_control(np.r_[p[:5], p[5:9]], method="bh")
    )
    assert hs.bh_fdr(np.array([np.nan])).shape == (1,)


def test_paired_comparison() -> None:
    rng = np.random.default_rng(9)
    a = rng.standard_normal(12) + 0.5
    b = rng.standard_normal(12)
    a[3] = np.nan
    res = hs.paired_comparison(a, b, n_perm=10**5)
    d = np.delete(a - b, 3)
    assert res.n_subjects == 11 and res.n_excluded == 1
    assert res.mean_diff == pytest.approx(d.mean())
    assert res.dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert res.p_value == pytest.approx(_brute_force_p(d, "two-sided"))
    g = hs.paired_comparison(a, b, hedges=True, n_perm=10**5)
    j = hs.hedges_correction(10)
    assert g.dz == pytest.approx(res.dz * j)
    assert j == pytest.approx(1 - 3 / (4 * 10 - 1), abs=2e-3) and j < 1  # the usual approximation
    const = hs.paired_comparison(np.ones(5) * 2, np.ones(5))
    assert np.isnan(const.dz)  # zero-variance differences: no effect size
    with pytest.raises(ValueError):
        hs.paired_comparison(np.ones(3), np.ones(4))


def _sentence_table(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for metric, effect in (("rsa_spearman", 0.15), ("hsic_rbf", 0.0)):
        for layer in ("llm.00", "llm.01"):
            for sub in range(8):
                for sid in range(1, 6):
                    v = np.tanh(effect * (layer == "llm.01") + 0.1 * rng.standard_normal())
                    rows.append(
                        {"subject": f"{sub:02d}", "sentence_id": sid, "model": "m", "layer": layer,
                         "metric": metric, "value": v, "null_mean": 0.0}
                    )  # fmt: skip
    df = pd.DataFrame(rows)
    df.loc[0, "value"] = np.nan
    return df


def test_subject_means_and_group_summary() -> None:
    rng = np.random.default_rng(10)
    df = _sentence_table(rng)
    subj = hs.subject_means(df, baseline_col="null_mean", fisher_z_metrics={"rsa_spearman"})
    first = subj.iloc[0]
    raw = df[(df.subject == first.subject) & (df.layer == first.layer) & (df.metric == first.metric)]["value"]
    expect = np.nanmean(np.arctanh(raw)) if first.metric == "rsa_spearman" else np.nanmean(raw)
    assert first["value"] == pytest.approx(expect)
    assert subj["n_sentences"].min() == 4 and subj["n_sentences"].max() == 5
    assert subj.set_index("metric").loc["hsic_rbf", "fisher"].eq(False).all()

    out = hs.group_summary(subj, n_perm=1000, n_boot=2000, seed=3)
    assert len(out) == 4 and (out["n_subjects"] == 8).all()
    row = out[(out.metric == "rsa_spearman") & (out.layer == "llm.01")].iloc[0]
    z = subj[(subj.metric == "rsa_spearman") & (subj.layer == "llm.01")]["value"]
    assert row["mean"] == pytest.approx(np.tanh(z.mean()))  # back-transformed for reporting
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert row["p_signflip"] == pytest.approx(1 / 256)  # 8 subjects, all above the baseline: exact test
    np.testing.assert_allclose(out["q_fdr"], stats.false_discovery_control(out["p_signflip"], method="bh"))
    # unit seeds come from the unit ids, not from row order
    shuffled = hs.group_summary(subj.sample(frac=1.0, random_state=1), n_perm=1000, n_boot=2000, seed=3)
    pd.testing.assert_frame_equal(out, shuffled)
