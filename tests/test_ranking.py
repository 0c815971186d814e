"""Model ranking across metrics: ranks, Kendall's W, metric agreement and bootstrap rank stability."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hearlike import ranking


def test_rank_descending_matches_scipy_and_keeps_nan() -> None:
    x = np.array([0.3, np.nan, 0.9, 0.3, -1.0])
    r = ranking.rank_descending(x)
    np.testing.assert_allclose(r[[0, 2, 3, 4]], stats.rankdata(-x[[0, 2, 3, 4]]))
    assert r[2] == 1 and np.isnan(r[1])
    m = np.random.default_rng(0).integers(0, 4, size=(3, 9)).astype(float)
    np.testing.assert_allclose(ranking.rank_descending(m), stats.rankdata(-m, axis=1))


def test_kendalls_w_known_values() -> None:
    same = np.tile(np.arange(1.0, 6.0), (4, 1))
    assert ranking.kendalls_w(same) == pytest.approx(1.0)
    # two raters in exactly opposite order: no concordance at all
    assert ranking.kendalls_w(np.array([[1, 2, 3, 4], [4, 3, 2, 1.0]])) == pytest.approx(0.0)
    # without ties, the mean pairwise Spearman is (mW − 1)/(m − 1)
    rng = np.random.default_rng(1)
    r = np.stack([rng.permutation(8) + 1.0 for _ in range(5)])
    mean_rho = np.mean([stats.spearmanr(a, b)[0] for a, b in combinations(r, 2)])
    w = ranking.kendalls_w(r)
    assert mean_rho == pytest.approx((5 * w - 1) / 4)


def test_kendalls_w_with_ties_equals_friedman() -> None:
    """Tie-corrected W = Friedman χ² / (m(n − 1)); scipy's Friedman test applies the same tie correction."""
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(6, 7)).astype(float)  # 6 raters (metrics), 7 items (models), many ties
    w = ranking.kendalls_w(scores)
    chi2 = stats.friedmanchisquare(*scores.T).statistic
    assert w == pytest.approx(chi2 / (6 * (7 - 1)))
    test = ranking.kendalls_w_test(ranking.rank_descending(scores))
    assert test["kendall_w"] == pytest.approx(w)
    assert test["p_value"] == pytest.approx(stats.friedmanchisquare(*scores.T).pvalue)
    # the uncorrected W is smaller when there are ties
    assert ranking.kendalls_w(scores, tie_correction=False) < w
    assert np.isnan(ranking.kendalls_w(np.ones((3, 4))))
    assert np.isnan(ranking.kendalls_w(np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]])))


def _profile() -> pd.DataFrame:
    """Three models × two metrics; metric B ranks the models in reverse by best layer."""
    rows = []
    a = {"m1": [0.1, 0.5, 0.2], "m2": [0.3, 0.3, 0.3], "m3": [0.0, 0.05, 0.9]}
    b = {"m1": [0.5, 0.2, -0.1], "m2": [0.9, 0.1, 0.1], "m3": [0.0, 0.1, 0.05]}
    for metric, table in (("A", a), ("B", b)):
        for model, vals in table.items():
            for i, v in enumerate(vals):
                rows.append({"model": model, "layer": f"llm.{i:02d}", "metric": metric, "mean": v})
    return pd.DataFrame(rows)


def test_rank_models_best_layer_and_mean_over_layers() -> None:
    out = ranking.rank_models(profile=_profile())
    assert list(out.columns)[:8] == [
        "model", "metric", "rank", "best_layer", "score", "rank_mean_over_layers",
        "score_mean_over_layers", "rank_stability",
    ]  # fmt: skip
    a = out[out.metric == "A"].set_index("model")
    assert a.loc["m3", "rank"] == 1 and a.loc["m3", "best_layer"] == "llm.02" and a.loc["m3", "score"] == 0.9
    assert a.loc["m1", "rank"] == 2 and a.loc["m2", "rank"] == 3
    # mean over layers: m2 0.3, m1 0.267, m3 0.317 → m3, m2, m1
    assert list(a.sort_values("rank_mean_over_layers").index) == ["m3", "m2", "m1"]
    b = out[out.metric == "B"].set_index("model")
    assert b.loc["m1", "best_layer"] == "llm.00" and b.loc["m1", "score"] == pytest.approx(0.5)
    assert list(b.sort_values("rank").index) == ["m2", "m1", "m3"]
    assert np.isnan(a["rank_stability"]).all()  # no subject values → no bootstrap


def test_metric_agreement_and_concordance_match_scipy() -> None:
    rng = np.random.default_rng(3)
    rows = []
    base = rng.standard_normal(6)
    for metric, noise in (("A", 0.0), ("B", 0.3), ("C", 2.0)):
        s = base + noise * rng.standard_normal(6)
        for i in range(6):
            rows.append({"model": f"m{i}", "layer": "llm.00", "metric": metric, "mean": s[i]})
    rows.append({"model": "m6", "layer": "llm.00", "metric": "A", "mean": 1.0})  # scored by one metric only
    prof = pd.DataFrame(rows)
    rk = ranking.rank_models(profile=prof)
    agree = ranking.metric_agreement(rk, criteria=("best_layer",))
    assert len(agree) == 3
    wide = prof[prof.model != "m6"].pivot(index="model", columns="metric", values="mean")
    row = agree[(agree.metric_a == "A") & (agree.metric_b == "C")].iloc[0]
    assert row["spearman"] == pytest.approx(stats.spearmanr(wide["A"], wide["C"])[0])
    assert row["kendall"] == pytest.approx(stats.kendalltau(wide["A"], wide["C"])[0])
    assert row["n_models"] == 6
    conc = ranking.concordance(rk).set_index("criterion")
    assert conc.loc["best_layer", "n_models"] == 6 and conc.loc["best_layer", "n_models_dropped"] == 1
    ref_w = stats.friedmanchisquare(*wide.to_numpy()).statistic / (3 * 5)
    assert conc.loc["best_layer", "kendall_w"] == pytest.approx(ref_w)


def _subject_table(
    rng: np.random.Generator, means: dict[str, float], sd: float, n_sub: int = 15
) -> pd.DataFrame:
    rows = []
    for model, mu in means.items():
        for layer in ("llm.00", "llm.01"):
            shift = 0.0 if layer == "llm.01" else -0.05
            for s in range(n_sub):
                rows.append(
                    {
                        "model": model,
                        "layer": layer,
                        "metric": "A",
                        "subject": f"{s:02d}",
                        "value": mu + shift + sd * rng.standard_normal(),
                    }
                )
    return pd.DataFrame(rows)


def test_bootstrap_rank_stability() -> None:
    rng = np.random.default_rng(4)
    sub = _subject_table(rng, {"clear": 1.0, "twin1": 0.2, "twin2": 0.2, "low": -1.0}, sd=0.3)
    prof = (
        sub.groupby(["model", "layer", "metric"], as_index=False)["value"]
        .mean()
        .rename(columns={"value": "mean"})
    )
    out = ranking.rank_models(profile=prof, subject_values=sub, n_boot=400, seed=1).set_index("model")
    assert out.loc["clear", "rank_stability"] == 1.0 and out.loc["clear", "rank_sd"] == 0.0
    assert out.loc["low", "rank_stability"] == 1.0
    # two models with the same true score swap places in a large share of the resamples
    assert 0.2 < out.loc["twin1", "rank_stability"] < 0.8 and out.loc["twin1", "rank_sd"] > 0.3
    again = ranking.rank_models(profile=prof, subject_values=sub, n_boot=400, seed=1).set_index("model")
    pd.testing.assert_frame_equal(out, again)
    # the bootstrap ranks are those of the best layer of resampled subject means
    pairs, boot = ranking.bootstrap_best_layer_ranks(sub, n_boot=50, seed=2)
    assert boot.shape == (4, 50) and set(np.unique(boot[pairs.model.tolist().index("clear")])) == {1.0}


def test_bootstrap_weights_equal_explicit_resampling() -> None:
    """The weighted-mean shortcut equals averaging an explicit resample of subjects."""
    rng = np.random.default_rng(5)
    sub = _subject_table(rng, {"a": 0.0, "b": 0.1, "c": 0.2}, sd=0.5, n_sub=6)
    sub.loc[3, "value"] = np.nan  # a missing subject value is skipped, not counted as 0
    pairs, boot = ranking.bootstrap_best_layer_ranks(sub, n_boot=1, seed=11)
    counts = np.random.default_rng(11).multinomial(6, np.full(6, 1 / 6), size=1)[0]
    subjects = sorted(sub.subject.unique())
    resampled = pd.concat(
        [sub[sub.subject == s] for s, c in zip(subjects, counts, strict=True) for _ in range(c)]
    )
    means = resampled.groupby(["model", "layer"])["value"].mean().groupby("model").max()
    expected = ranking.rank_descending(means.loc[pairs.model].to_numpy())
    np.testing.assert_allclose(boot[:, 0], expected)


def test_rank_dependence_bundle() -> None:
    res = ranking.rank_dependence(profile=_profile())
    assert set(res.model_ranking.metric) == {"A", "B"}
    ab = res.metric_agreement[res.metric_agreement.criterion == "best_layer"].iloc[0]
    assert ab["spearman"] == pytest.approx(-1.0) and ab["kendall"] == pytest.approx(-1.0)
    assert res.concordance.set_index("criterion").loc["best_layer", "kendall_w"] == pytest.approx(0.0)
