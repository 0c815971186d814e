"""Model ranking across metrics: ranks, Kendall's W, metric agreement and bootstrap rank stability."""

from __future__ import annotations

import logging
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hearlike import aggregate, ranking
from hearlike.io import read_tsv, write_tsv


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


def test_rank_models_raw_basis_without_nulls_and_reason() -> None:
    """Without nulls only the paper's raw ranking exists; the above-null ranks are NaN and say why."""
    out = ranking.rank_models(profile=_profile())
    assert list(out.columns) == ranking.RANKING_COLUMNS
    a = out[out.metric == "A"].set_index("model")
    assert a.loc["m3", "rank_raw"] == 1 and a.loc["m3", "best_layer_raw"] == "llm.02"
    assert a.loc["m3", "score_raw"] == 0.9
    assert a.loc["m1", "rank_raw"] == 2 and a.loc["m2", "rank_raw"] == 3
    # mean over layers: m2 0.3, m1 0.267, m3 0.317 → m3, m2, m1
    assert list(a.sort_values("rank_raw_mean_over_layers").index) == ["m3", "m2", "m1"]
    b = out[out.metric == "B"].set_index("model")
    assert b.loc["m1", "best_layer_raw"] == "llm.00" and b.loc["m1", "score_raw"] == pytest.approx(0.5)
    assert list(b.sort_values("rank_raw").index) == ["m2", "m1", "m3"]
    assert np.isnan(a["rank_stability_raw"]).all()  # no subject values → no bootstrap
    assert out["rank"].isna().all() and out["above_null"].isna().all() and out["best_layer"].isna().all()
    assert out["reason"].str.contains("no finite null").all()


def _null_profile() -> pd.DataFrame:
    """Three models × one metric; the model with the highest raw score is below its own null."""
    rows = []
    layers = {  # (raw mean, null) per layer
        "loud": [(0.60, 0.70), (0.80, 0.85)],  # highest raw score, but under its null at every layer
        "quiet": [(0.30, 0.00), (0.25, 0.10)],  # best above null at its first layer
        "mid": [(0.40, 0.30), (0.45, 0.30)],
    }
    for model, vals in layers.items():
        for i, (mean, null) in enumerate(vals):
            rows.append({"model": model, "layer": f"llm.{i:02d}", "metric": "A", "mean": mean,
                         "above_null": mean - null, "q_fdr": 0.01 * (i + 1) if mean > null else 0.9})
    return pd.DataFrame(rows)


def test_raw_winner_below_its_null_does_not_rank_first() -> None:
    out = ranking.rank_models(profile=_null_profile()).set_index("model")
    assert out.loc["loud", "rank_raw"] == 1 and out.loc["loud", "score_raw"] == pytest.approx(0.80)
    assert out.loc["loud", "rank"] == 3 and out.loc["loud", "above_null"] == pytest.approx(-0.05)
    assert out.loc["loud", "above_null_raw"] == pytest.approx(-0.05)  # at its raw best layer as well
    assert out.loc["quiet", "rank"] == 1 and out.loc["quiet", "best_layer"] == "llm.00"
    assert out.loc["quiet", "score"] == pytest.approx(0.30) and out.loc["quiet", "above_null"] == pytest.approx(0.30)
    assert out.loc["quiet", "q_above_null"] == pytest.approx(0.01)
    assert out.loc["mid", "rank"] == 2 and out.loc["mid", "best_layer"] == "llm.01"
    assert out.loc["mid", "q_above_null"] == pytest.approx(0.02)
    assert out.loc["quiet", "above_null_mean_over_layers"] == pytest.approx(0.225)
    assert list(out.sort_values("rank_mean_over_layers").index) == ["quiet", "mid", "loud"]
    assert out["reason"].isna().all()
    assert list(ranking.rank_models(profile=_null_profile())["model"]) == ["quiet", "mid", "loud"]


def _subject_rows(model: str, layer: str, metric: str, values: np.ndarray, nulls: np.ndarray) -> list[dict]:
    return [{"model": model, "layer": layer, "metric": metric, "subject": f"{s:02d}", "value": v, "null_mean": n}
            for s, (v, n) in enumerate(zip(values, nulls, strict=True))]


def test_above_null_from_subject_values_in_fisher_z_and_nan_safe_ranks(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(7)
    rows = []
    truth = {"a": (0.5, 0.45), "b": (0.3, 0.0), "c": (0.35, 0.1), "nonull": (0.9, np.nan)}
    for model, (mu, null) in truth.items():
        for layer, shift in (("llm.00", 0.0), ("llm.01", -0.05)):
            rows += _subject_rows(model, layer, "rsa", np.tanh(np.arctanh(mu) + shift + 0.05 * rng.standard_normal(8)),
                                  np.full(8, null))
    rows += _subject_rows("solo", "llm.00", "other", rng.standard_normal(8) + 1.0, np.zeros(8))
    sub = pd.DataFrame(rows)
    sub.loc[0, "null_mean"] = np.nan  # one subject without a null: left out of that layer's difference
    z = sub["value"].copy()
    z[sub.metric == "rsa"] = np.arctanh(z[sub.metric == "rsa"])
    prof = sub.assign(z=z).groupby(["model", "layer", "metric"], as_index=False)["z"].mean()
    prof["mean"] = np.where(prof.metric == "rsa", np.tanh(prof.z), prof.z)
    with caplog.at_level(logging.WARNING, logger="hearlike.ranking"):
        out = ranking.rank_models(profile=prof.drop(columns="z"), subject_values=sub, fisher_z_metrics={"rsa"},
                                  n_boot=200, n_perm=1000, seed=3)
    rsa = out[out.metric == "rsa"].set_index("model")
    g = sub[(sub.model == "a") & (sub.layer == "llm.00")]
    expected = np.nanmean(np.arctanh(g.value) - np.arctanh(g.null_mean))  # Fisher z, paired subjects only
    assert rsa.loc["a", "best_layer"] == "llm.00" and rsa.loc["a", "above_null"] == pytest.approx(expected)
    assert rsa.loc["nonull", "rank_raw"] == 1  # highest raw score …
    assert np.isnan(rsa.loc["nonull", "rank"]) and "no finite null" in rsa.loc["nonull", "reason"]  # … no null
    assert sorted(rsa["rank"].dropna()) == [1.0, 2.0, 3.0] and rsa.loc["b", "rank"] == 1
    assert np.isnan(rsa.loc["nonull", "rank_stability"]) and np.isfinite(rsa.loc["b", "rank_stability"])
    assert rsa.loc["b", "q_above_null_mean_over_layers"] < 0.05
    assert rsa.loc["a", "q_above_null_mean_over_layers"] > rsa.loc["b", "q_above_null_mean_over_layers"]
    solo = out[out.metric == "other"].iloc[0]  # one model: no ranking (not a trivial rank 1)
    assert np.isnan(solo["rank"]) and np.isnan(solo["rank_raw"]) and "fewer than 2 models" in solo["reason"]
    assert np.isfinite(solo["above_null"])
    assert "lack a rank" in caplog.text and all(r.levelno == logging.WARNING for r in caplog.records)
    again = ranking.rank_models(profile=prof.drop(columns="z"), subject_values=sub, fisher_z_metrics={"rsa"},
                                n_boot=200, n_perm=1000, seed=3)
    pd.testing.assert_frame_equal(out, again)


def test_metric_agreement_and_concordance_match_scipy() -> None:
    rng = np.random.default_rng(3)
    rows = []
    base = rng.standard_normal(6)
    for metric, noise in (("A", 0.0), ("B", 0.3), ("C", 2.0)):
        s = base + noise * rng.standard_normal(6)
        null = rng.uniform(0, 1, 6)
        for i in range(6):
            rows.append({"model": f"m{i}", "layer": "llm.00", "metric": metric, "mean": s[i],
                         "above_null": s[i] - null[i]})
    rows.append({"model": "m6", "layer": "llm.00", "metric": "A", "mean": 1.0, "above_null": np.nan})  # one metric
    prof = pd.DataFrame(rows)
    rk = ranking.rank_models(profile=prof)
    agree = ranking.metric_agreement(rk, criteria=("best_layer",))
    assert list(agree.columns) == ranking.AGREEMENT_COLUMNS
    assert len(agree) == 6 and set(agree.basis) == {"above_null", "raw"} and agree["reason"].isna().all()
    kept = prof[prof.model != "m6"]
    for basis, col in (("raw", "mean"), ("above_null", "above_null")):
        wide = kept.pivot(index="model", columns="metric", values=col)
        row = agree[(agree.metric_a == "A") & (agree.metric_b == "C") & (agree.basis == basis)].iloc[0]
        assert row["spearman"] == pytest.approx(stats.spearmanr(wide["A"], wide["C"])[0])
        assert row["kendall"] == pytest.approx(stats.kendalltau(wide["A"], wide["C"])[0])
        assert row["n_models"] == 6
        conc = ranking.concordance(rk)
        assert list(conc.columns) == ranking.CONCORDANCE_COLUMNS
        c = conc[(conc.criterion == "best_layer") & (conc.basis == basis)].iloc[0]
        # m6 has a raw score for A only, and no finite null at all: dropped on both bases
        assert c["n_models"] == 6 and c["n_models_dropped"] == 1
        ref_w = stats.friedmanchisquare(*wide.to_numpy()).statistic / (3 * 5)
        assert c["kendall_w"] == pytest.approx(ref_w)
        assert c["kendall_w"] == pytest.approx(ranking.kendalls_w(wide.to_numpy().T))


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
                        "null_mean": 0.0,
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
    for suffix in ("", "_raw"):  # a zero null: both bases agree
        assert out.loc["clear", f"rank_stability{suffix}"] == 1.0 and out.loc["clear", f"rank_sd{suffix}"] == 0.0
        assert out.loc["low", f"rank_stability{suffix}"] == 1.0
        # two models with the same true score swap places in a large share of the resamples
        assert 0.2 < out.loc["twin1", f"rank_stability{suffix}"] < 0.8 and out.loc["twin1", f"rank_sd{suffix}"] > 0.3
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
    agree = res.metric_agreement
    ab = agree[(agree.criterion == "best_layer") & (agree.basis == "raw")].iloc[0]
    assert ab["spearman"] == pytest.approx(-1.0) and ab["kendall"] == pytest.approx(-1.0)
    conc = res.concordance.set_index(["basis", "criterion"])
    assert conc.loc[("raw", "best_layer"), "kendall_w"] == pytest.approx(0.0)
    # no nulls: the above-null statistics are undefined, with a reason, not 0
    above = agree[agree.basis == "above_null"]
    assert above["spearman"].isna().all() and above["reason"].str.contains("fewer than 3").all()
    assert np.isnan(conc.loc[("above_null", "best_layer"), "kendall_w"])
    assert "at least 2" in conc.loc[("above_null", "best_layer"), "reason"]


# --------------------------------------------------------------------------------------------------
# the workflow step: full header and a reason row when there is too little to rank


def _write_inputs(tmp_path: Path, models: list[str], metrics: list[str]) -> tuple[Path, Path]:
    rng = np.random.default_rng(8)
    sub = pd.DataFrame([
        {"model": mo, "layer": "llm.00", "metric": me, "subject": f"{s:02d}", "value": 0.2 + 0.05 * rng.standard_normal(),
         "null_mean": 0.05}
        for mo in models for me in metrics for s in range(6)
    ])  # fmt: skip
    prof = sub.groupby(["model", "layer", "metric"], as_index=False)["value"].mean().rename(columns={"value": "mean"})
    prof["q_fdr"] = 0.01
    write_tsv(prof, tmp_path / "layer_profile.tsv")
    write_tsv(sub, tmp_path / "subject_layer_values.tsv")
    return tmp_path / "layer_profile.tsv", tmp_path / "subject_layer_values.tsv"


def _run_step(tmp_path: Path, profile: Path, subjects: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    aggregate.rank_models(profile=profile, subjects=subjects, n_bootstrap=50, seed=0, n_signflip=100,
                          out_ranking=tmp_path / "model_ranking.tsv", out_agreement=tmp_path / "metric_agreement.tsv")
    return read_tsv(tmp_path / "model_ranking.tsv"), read_tsv(tmp_path / "metric_agreement.tsv")


AGREEMENT_FILE_COLUMNS = ["metric_a", "metric_b", "criterion", "basis", "spearman", "kendall", "n_models", "kendall_w",
                          "chi2", "df", "p_value", "n_metrics", "n_models_dropped", "reason"]


def test_step_with_one_model_and_one_metric_writes_reason_rows(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    profile, subjects = _write_inputs(tmp_path, ["solo"], ["rsa_spearman"])
    with caplog.at_level(logging.WARNING):
        rank, agree = _run_step(tmp_path, profile, subjects)
    assert list(rank.columns) == ranking.RANKING_COLUMNS and len(rank) == 1
    assert np.isnan(rank.loc[0, "rank"]) and np.isnan(rank.loc[0, "rank_raw"])
    assert "fewer than 2 models" in rank.loc[0, "reason"] and np.isfinite(rank.loc[0, "above_null"])
    assert list(agree.columns) == AGREEMENT_FILE_COLUMNS
    pairs = agree[agree.metric_a != "ALL"]
    assert len(pairs) == 4 and pairs["spearman"].isna().all() and pairs["reason"].str.contains("no pair").all()
    w = agree[agree.metric_a == "ALL"]
    assert len(w) == 4 and w["kendall_w"].isna().all() and w["reason"].notna().all()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "hearlike.ranking"]
    assert {"model ranking", "metric agreement", "Kendall's W"} <= {r.getMessage().split(":")[0] for r in warnings}


def test_step_with_an_empty_profile_writes_a_reason_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    profile, subjects = _write_inputs(tmp_path, ["a"], ["rsa_spearman"])
    write_tsv(read_tsv(profile).iloc[0:0], profile)
    write_tsv(read_tsv(subjects).iloc[0:0], subjects)
    with caplog.at_level(logging.WARNING):
        rank, agree = _run_step(tmp_path, profile, subjects)
    assert list(rank.columns) == ranking.RANKING_COLUMNS and len(rank) == 1
    assert rank.loc[0, "reason"] == "layer profile has no rows: nothing to rank" and rank["rank"].isna().all()
    assert list(agree.columns) == AGREEMENT_FILE_COLUMNS and agree["reason"].notna().all()
    assert "nothing to rank" in caplog.text


def test_step_ranks_above_null_with_fisher_metrics(tmp_path: Path) -> None:
    profile, subjects = _write_inputs(tmp_path, ["m1", "m2", "m3"], ["rsa_spearman", "cka_linear"])
    rank, agree = _run_step(tmp_path, profile, subjects)
    assert rank["reason"].isna().all() and sorted(rank["rank"]) == [1, 1, 2, 2, 3, 3]
    sub = read_tsv(subjects)
    g = sub[(sub.model == "m1") & (sub.metric == "rsa_spearman")]
    r = rank[(rank.model == "m1") & (rank.metric == "rsa_spearman")].iloc[0]
    assert r["above_null"] == pytest.approx(np.mean(np.arctanh(g.value) - np.arctanh(g.null_mean)))
    c = rank[(rank.model == "m1") & (rank.metric == "cka_linear")].iloc[0]  # not a correlation: plain difference
    g = sub[(sub.model == "m1") & (sub.metric == "cka_linear")]
    assert c["above_null"] == pytest.approx(np.mean(g.value - g.null_mean))
    assert set(agree["basis"]) == {"above_null", "raw"} and agree["reason"].isna().all()


def test_subject_differences_prefer_the_paired_diff_column() -> None:
    """subject_layer_values.tsv's ``diff`` pairs value and null over the same sentences: it is used as is."""
    sub = pd.DataFrame({"model": "m", "layer": "l", "metric": ["rsa_spearman", "cka_linear"], "subject": "01",
                        "value": [0.5, 0.5], "null_mean": [0.1, 0.1]})
    plain = ranking.subject_differences(sub, fisher_z_metrics={"rsa_spearman"})
    np.testing.assert_allclose(plain, [np.arctanh(0.5) - np.arctanh(0.1), 0.4])
    np.testing.assert_allclose(ranking.subject_differences(sub.assign(diff=[0.3, np.nan])), [0.3, np.nan])
