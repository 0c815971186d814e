"""Model ranking across metrics: the paper's "rank-dependence split" (METHODS §6.3).

Per metric, the models are ranked (1 = most brain-like) by their best layer's score and by their
mean over layers; agreement between metrics is quantified by pairwise Spearman/Kendall correlations of
those rankings and by Kendall's W over all metrics; a bootstrap over subjects tells how stable each
model's rank is.

The primary ("above_null") basis ranks each model by its score minus its own null at the same layer
(the circular-shift null mean of the layer profile), so a model whose raw score is high only because
its null is high does not come first. The paper ranked raw scores; that ranking is kept as the
``*_raw`` columns and as the ``raw`` basis of the agreement statistics.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from hearlike.seeding import derive_seed
from hearlike.stats import bh_fdr, fisher_z, rank_average, sign_flip_test

log = logging.getLogger(__name__)

Criterion = Literal["best_layer", "mean_over_layers"]
Basis = Literal["above_null", "raw"]
#: The score ranked for each (basis, criterion) and the rank column that holds the result.
_SCORE_COL: dict[tuple[str, str], str] = {
    ("above_null", "best_layer"): "above_null",
    ("above_null", "mean_over_layers"): "above_null_mean_over_layers",
    ("raw", "best_layer"): "score_raw",
    ("raw", "mean_over_layers"): "score_raw_mean_over_layers",
}
_RANK_COL: dict[tuple[str, str], str] = {
    ("above_null", "best_layer"): "rank",
    ("above_null", "mean_over_layers"): "rank_mean_over_layers",
    ("raw", "best_layer"): "rank_raw",
    ("raw", "mean_over_layers"): "rank_raw_mean_over_layers",
}
#: Columns of the ``model_ranking`` table, in order.
RANKING_COLUMNS: list[str] = [
    "model", "metric",
    "rank", "best_layer", "score", "above_null", "q_above_null",
    "rank_mean_over_layers", "above_null_mean_over_layers", "q_above_null_mean_over_layers",
    "rank_stability", "rank_sd",
    "rank_raw", "best_layer_raw", "score_raw", "above_null_raw", "q_above_null_raw",
    "rank_raw_mean_over_layers", "score_raw_mean_over_layers", "rank_stability_raw", "rank_sd_raw",
    "reason",
]  # fmt: skip
#: Columns of the pairwise part of ``metric_agreement`` and of the Kendall's W table.
AGREEMENT_COLUMNS: list[str] = ["metric_a", "metric_b", "criterion", "basis", "spearman", "kendall", "n_models",
                                "reason"]
CONCORDANCE_COLUMNS: list[str] = ["criterion", "basis", "kendall_w", "chi2", "df", "p_value", "n_metrics",
                                  "n_models", "n_models_dropped", "reason"]


def rank_descending(scores: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, 1 = highest score, ties averaged; NaN scores get NaN ranks."""
    x = np.asarray(scores, dtype=float)
    finite = np.isfinite(x)
    # NaN → +inf after negation so they sort last and leave the finite ranks 1..k untouched
    ranks = rank_average(np.where(finite, -x, np.inf))
    return np.where(finite, ranks, np.nan)


def kendalls_w(ranks: np.ndarray, *, tie_correction: bool = True) -> float:
    """Kendall's coefficient of concordance W of m raters (rows) ranking n items (columns).

    W = 12 S / (m²(n³ − n) − m Σ_j T_j), S = Σ_i (R_i − m(n + 1)/2)², R_i the rank sum of item i and
    T_j = Σ (t³ − t) over the tie groups of rater j (0 without ``tie_correction``). Ranks must be
    complete (no NaN); raters are re-ranked with average ties, so scores may be passed as well.
    NaN when undefined (fewer than 2 items or raters, or every rater ties everything).
    """
    r = np.asarray(ranks, dtype=float)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 2 or not np.all(np.isfinite(r)):
        return np.nan
    m, n = r.shape
    r = rank_average(r)
    rank_sums = r.sum(axis=0)
    s = float(np.sum((rank_sums - m * (n + 1) / 2.0) ** 2))
    ties = 0.0
    if tie_correction:
        for row in r:
            _, counts = np.unique(row, return_counts=True)
            ties += float(np.sum(counts.astype(float) ** 3 - counts))
    denom = m**2 * (n**3 - n) - m * ties
    return 12.0 * s / denom if denom > 0 else np.nan


def kendalls_w_test(ranks: np.ndarray) -> dict[str, float]:
    """W with its large-sample test: χ² = m(n − 1)W on n − 1 degrees of freedom (Friedman's statistic)."""
    r = np.asarray(ranks, dtype=float)
    w = kendalls_w(r)
    if not np.isfinite(w):
        return {"kendall_w": np.nan, "chi2": np.nan, "df": np.nan, "p_value": np.nan}
    m, n = r.shape
    chi2 = m * (n - 1) * w
    return {"kendall_w": w, "chi2": chi2, "df": float(n - 1), "p_value": float(sps.chi2.sf(chi2, n - 1))}


# --------------------------------------------------------------------------------------------------
# scores above each model's own null


def _z_space(df: pd.DataFrame, col: str, fisher_z_metrics: Collection[str]) -> np.ndarray:
    """``df[col]`` in the space subject means are averaged in: Fisher z for the listed metrics."""
    v = df[col].to_numpy(dtype=float) if col in df else np.full(len(df), np.nan)
    return np.where(df["metric"].isin(list(fisher_z_metrics)).to_numpy(), fisher_z(v), v)


def subject_differences(
    subject_values: pd.DataFrame,
    *,
    fisher_z_metrics: Collection[str] = (),
    value_col: str = "value",
    null_col: str = "null_mean",
) -> np.ndarray:
    """Each subject's value − null (Fisher z for ``fisher_z_metrics``), the quantity the profile tests.

    The ``diff`` column of ``subject_layer_values.tsv`` when present (it pairs value and null over the
    same sentences); otherwise z(value) − z(null). NaN where the null is missing.
    """
    if "diff" in subject_values:
        return subject_values["diff"].to_numpy(dtype=float)
    return _z_space(subject_values, value_col, fisher_z_metrics) - _z_space(subject_values, null_col, fisher_z_metrics)


def above_null_scores(
    subject_values: pd.DataFrame | None,
    *,
    fisher_z_metrics: Collection[str] = (),
    value_col: str = "value",
    null_col: str = "null_mean",
) -> pd.DataFrame:
    """Per (model, layer, metric): ``above_null``, the mean over subjects of value − null, and its n.

    As in :func:`hearlike.stats.subject_means` and the layer profile's ``above_null``, the differences of
    correlation-type metrics are in Fisher z (:func:`subject_differences`). NaN where no subject has a
    finite null.
    """
    cols = ["model", "layer", "metric", "above_null", "n_null_subjects"]
    if subject_values is None or subject_values.empty:
        return pd.DataFrame(columns=cols)
    d = subject_differences(subject_values, fisher_z_metrics=fisher_z_metrics, value_col=value_col,
                            null_col=null_col)
    return (
        subject_values[["model", "layer", "metric"]].assign(_d=d)
        .groupby(["model", "layer", "metric"], sort=True, dropna=False)
        .agg(above_null=("_d", "mean"), n_null_subjects=("_d", "count"))
        .reset_index()[cols]
    )  # fmt: skip


def _mean_over_layers_tests(
    subject_values: pd.DataFrame | None,
    *,
    fisher_z_metrics: Collection[str],
    n_perm: int,
    seed: int,
    null_col: str = "null_mean",
) -> pd.DataFrame:
    """Per (model, metric): sign-flip p (one-sided, > 0) of each subject's mean over layers of value − null.

    BH over all (model, metric) gives ``q_above_null_mean_over_layers``.
    """
    cols = ["model", "metric", "p_mean_over_layers", "q_above_null_mean_over_layers"]
    if subject_values is None or subject_values.empty:
        return pd.DataFrame(columns=cols)
    d = subject_differences(subject_values, fisher_z_metrics=fisher_z_metrics, null_col=null_col)
    per_subject = (
        subject_values[["model", "metric", "subject"]].assign(_d=d)
        .groupby(["model", "metric", "subject"], sort=True)["_d"].mean()  # NaN layers skipped
        .reset_index()
    )  # fmt: skip
    rows = []
    for (model, metric), g in per_subject.groupby(["model", "metric"], sort=True):
        test = sign_flip_test(g["_d"].to_numpy(dtype=float), alternative="greater", n_perm=n_perm,
                              rng=derive_seed(seed, "above-null-mean", metric, model))
        rows.append({"model": model, "metric": metric, "p_mean_over_layers": test.p_value})
    out = pd.DataFrame(rows, columns=cols[:3])
    out["q_above_null_mean_over_layers"] = bh_fdr(out["p_mean_over_layers"].to_numpy(dtype=float))
    return out


# --------------------------------------------------------------------------------------------------
# per-metric model ranks


def _best(values: np.ndarray) -> int | None:
    """Position of the largest finite value (first on ties), None if there is none."""
    finite = np.isfinite(values)
    return int(np.flatnonzero(finite)[np.argmax(values[finite])]) if finite.any() else None


def _at(values: np.ndarray, i: int | None) -> float:
    return float(values[i]) if i is not None else np.nan


def _finite_mean(values: np.ndarray) -> float:
    finite = np.isfinite(values)
    return float(values[finite].mean()) if finite.any() else np.nan


def layer_summaries(
    profile: pd.DataFrame, *, score_col: str = "mean", nulls: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per (model, metric): best layer and scores on both bases (NaN layers skipped).

    Per layer, ``above_null`` comes from ``nulls`` (:func:`above_null_scores`) or else from the profile's
    own ``above_null`` column. Above-null basis: ``best_layer`` is the layer with the largest above-null
    score, with its raw ``score``, ``above_null`` and ``q_above_null`` (the profile's ``q_fdr`` of
    value − null at that layer, only where the null is finite); ``above_null_mean_over_layers`` averages
    the finite above-null scores. Raw basis: ``best_layer_raw`` has the highest ``score_col``, with
    ``score_raw``, ``above_null_raw`` and ``q_above_null_raw``; ``score_raw_mean_over_layers`` averages
    the finite raw scores.
    """
    prof = profile
    if nulls is not None and len(nulls):
        prof = profile.drop(columns=["above_null"], errors="ignore").merge(
            nulls[["model", "layer", "metric", "above_null"]], on=["model", "layer", "metric"], how="left"
        )
    rows = []
    for (model, metric), g in prof.groupby(["model", "metric"], sort=True):
        raw = g[score_col].to_numpy(dtype=float)
        above = g["above_null"].to_numpy(dtype=float) if "above_null" in g else np.full(raw.shape, np.nan)
        q = g["q_fdr"].to_numpy(dtype=float) if "q_fdr" in g else np.full(raw.shape, np.nan)
        # the profile's q tests value − null only where there was a null (else it tests value − 0)
        q = np.where(np.isfinite(above), q, np.nan)
        layers = g["layer"].to_numpy()
        i, j = _best(above), _best(raw)
        rows.append(
            {
                "model": model,
                "metric": metric,
                "best_layer": layers[i] if i is not None else None,
                "score": _at(raw, i),
                "above_null": _at(above, i),
                "q_above_null": _at(q, i),
                "above_null_mean_over_layers": _finite_mean(above),
                "best_layer_raw": layers[j] if j is not None else None,
                "score_raw": _at(raw, j),
                "above_null_raw": _at(above, j),
                "q_above_null_raw": _at(q, j),
                "score_raw_mean_over_layers": _finite_mean(raw),
            }
        )
    cols = ["model", "metric", "best_layer", "score", "above_null", "q_above_null", "above_null_mean_over_layers",
            "best_layer_raw", "score_raw", "above_null_raw", "q_above_null_raw", "score_raw_mean_over_layers"]
    return pd.DataFrame(rows, columns=cols)


def _add_ranks(summary: pd.DataFrame) -> pd.DataFrame:
    """Rank columns of both bases per metric; ``reason`` says why a rank is missing.

    A ranking needs at least 2 models with a finite score: a lone model gets NaN, not a trivial rank 1.
    """
    out = summary.copy()
    reasons: dict[int, list[str]] = {i: [] for i in out.index}
    for col in _RANK_COL.values():
        out[col] = np.nan
    for metric, idx in out.groupby("metric", sort=False).groups.items():
        for (basis, criterion), rank_col in _RANK_COL.items():
            scores = out.loc[idx, _SCORE_COL[(basis, criterion)]].to_numpy(dtype=float)
            finite = np.isfinite(scores)
            if finite.sum() >= 2:
                out.loc[idx, rank_col] = rank_descending(scores)
            if criterion != "best_layer":
                continue  # the same models lack both criteria: one reason per basis
            for row, ok in zip(idx, finite, strict=True):
                if not ok:
                    reasons[row].append("no finite null at any layer: no above-null rank" if basis == "above_null"
                                        else "no finite score at any layer: no raw rank")
                elif finite.sum() < 2:
                    reasons[row].append(f"fewer than 2 models with a finite {basis.replace('_', '-')} score "
                                        f"for {metric}: no {basis.replace('_', '-')} rank")
    out["reason"] = [("; ".join(reasons[i]) or np.nan) for i in out.index]
    return out


def bootstrap_best_layer_ranks(
    subject_values: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, value_col: str = "value"
) -> tuple[pd.DataFrame, np.ndarray]:
    """Best-layer model ranks per metric in ``n_boot`` resamples of subjects (with replacement).

    ``subject_values`` has model, layer, metric, subject and ``value_col`` (e.g. the subject means of
    :func:`hearlike.stats.subject_means`, in Fisher-z space where that applies: the best layer and the
    ranks are unchanged by tanh; or :func:`subject_differences` for the above-null basis). One resample
    of subjects is shared by all models, layers and metrics, as they were measured on the same people.
    Returns the (metric, model) index table and ranks of shape (n_pairs, n_boot); a metric with fewer
    than 2 finite models in a resample has NaN ranks there, as the observed ranking would.
    """
    keys = ["metric", "model", "layer"]
    # only the (metric, model, layer) that exist: a pivot over all combinations of the levels can be far larger
    wide = subject_values.groupby([*keys, "subject"], sort=True)[value_col].mean().unstack("subject")
    v = wide.to_numpy(dtype=float)
    have = np.isfinite(v)
    v0 = np.where(have, v, 0.0)
    rng = np.random.default_rng(seed)
    n_sub = v.shape[1]
    # multinomial counts: resampling subjects with replacement as weights, one column per resample
    weights = rng.multinomial(n_sub, np.full(n_sub, 1.0 / n_sub), size=n_boot).T.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (v0 @ weights) / (have.astype(float) @ weights)  # (rows, n_boot)
    pair_codes, pairs = pd.factorize(pd.MultiIndex.from_frame(wide.index.to_frame(index=False)[["metric", "model"]]),
                                     sort=True)
    best = np.full((len(pairs), n_boot), -np.inf)
    np.fmax.at(best, pair_codes, means)
    best[np.isneginf(best)] = np.nan
    pair_table = pd.DataFrame(list(pairs), columns=["metric", "model"])
    ranks = np.full(best.shape, np.nan)
    for _, idx in pair_table.groupby("metric", sort=False).groups.items():
        enough = np.isfinite(best[idx]).sum(axis=0) >= 2
        ranks[idx] = np.where(enough, rank_descending(best[idx].T).T, np.nan)
    return pair_table, ranks


def _stability(table: pd.DataFrame, rank_col: str, pairs: pd.DataFrame, boot: np.ndarray) -> tuple[list, list]:
    """Share of resamples keeping each observed rank, and the SD of the resampled ranks."""
    lookup = {(me, mo): i for i, (me, mo) in enumerate(pairs.itertuples(index=False))}
    stability, sd = [], []
    for row in table.itertuples():
        i = lookup.get((row.metric, row.model))
        rank = getattr(row, rank_col)
        if i is None or not np.isfinite(rank):
            stability.append(np.nan)
            sd.append(np.nan)
            continue
        b = boot[i]
        stability.append(float(np.mean(np.isclose(b, rank))))
        sd.append(float(np.nanstd(b, ddof=1)) if np.isfinite(b).sum() > 1 else np.nan)
    return stability, sd


def _no_rows(reason: str, columns: Sequence[str]) -> pd.DataFrame:
    """One row of NaN with ``reason``: a table that says why it is empty instead of being silently so."""
    return pd.DataFrame([{c: (reason if c == "reason" else np.nan) for c in columns}], columns=list(columns))


def rank_models(
    *,
    profile: pd.DataFrame,
    subject_values: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    score_col: str = "mean",
    fisher_z_metrics: Collection[str] = (),
    n_perm: int = 10000,
    null_col: str = "null_mean",
) -> pd.DataFrame:
    """The ``model_ranking`` table (columns :data:`RANKING_COLUMNS`), one row per (model, metric).

    Above-null basis (primary): ``rank`` of the best layer's ``above_null`` (the mean over subjects of
    value − the model's own null at ``best_layer``, in Fisher z for ``fisher_z_metrics``;
    :func:`above_null_scores`), ``best_layer`` being the layer with the largest above-null score and
    ``score`` its raw score; ``q_above_null`` is the profile's ``q_fdr`` there; ``rank_mean_over_layers`` of
    ``above_null_mean_over_layers`` with ``q_above_null_mean_over_layers`` (sign-flip of each subject's
    mean over layers of value − null, BH over the table); ``rank_stability`` (share of subject bootstrap
    resamples in which the model keeps its rank) and ``rank_sd``. Only models with a finite null are
    ranked. Raw basis (the paper's): ``rank_raw`` of ``score_raw`` at ``best_layer_raw`` (highest
    ``score_col``), with ``above_null_raw`` and ``q_above_null_raw`` there, ``rank_raw_mean_over_layers``
    of ``score_raw_mean_over_layers``, ``rank_stability_raw`` and ``rank_sd_raw``. ``reason`` says why a
    rank is missing (NaN otherwise). Without ``subject_values`` there are no nulls and no bootstrap.
    """
    if profile.empty:
        log.warning("model ranking: the layer profile has no rows, nothing to rank")
        return _no_rows("layer profile has no rows: nothing to rank", RANKING_COLUMNS)
    nulls = above_null_scores(subject_values, fisher_z_metrics=fisher_z_metrics, null_col=null_col)
    table = _add_ranks(layer_summaries(profile, score_col=score_col, nulls=nulls))
    tests = _mean_over_layers_tests(subject_values, fisher_z_metrics=fisher_z_metrics, n_perm=n_perm, seed=seed,
                                    null_col=null_col)
    table = table.merge(tests[["model", "metric", "q_above_null_mean_over_layers"]], on=["model", "metric"],
                        how="left")
    for col in ("rank_stability", "rank_sd", "rank_stability_raw", "rank_sd_raw"):
        table[col] = np.nan
    if subject_values is not None and len(subject_values):
        boot_values = subject_values[["model", "layer", "metric", "subject"]].assign(
            _diff=subject_differences(subject_values, fisher_z_metrics=fisher_z_metrics, null_col=null_col),
            _z=_z_space(subject_values, "value", fisher_z_metrics),
        )
        for value_col, rank_col, suffix in (("_diff", "rank", ""), ("_z", "rank_raw", "_raw")):
            # the same seed on both bases: the same resamples of subjects, so the two are comparable
            pairs, boot = bootstrap_best_layer_ranks(boot_values, n_boot=n_boot, seed=seed, value_col=value_col)
            table[f"rank_stability{suffix}"], table[f"rank_sd{suffix}"] = _stability(table, rank_col, pairs, boot)
    unranked = table["reason"].notna()
    if unranked.any():
        log.warning("model ranking: %d of %d (model, metric) rows lack a rank: %s", int(unranked.sum()),
                    len(table), "; ".join(sorted(set(table.loc[unranked, "reason"]))))
    out = table[RANKING_COLUMNS].sort_values(["metric", "rank", "rank_raw", "model"], kind="stable")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# agreement between metrics


def _score_matrix(ranking: pd.DataFrame, basis: str, criterion: str) -> pd.DataFrame:
    return ranking.pivot_table(index="metric", columns="model", values=_SCORE_COL[(basis, criterion)],
                               dropna=False)


def metric_agreement(
    ranking: pd.DataFrame,
    *,
    criteria: Sequence[Criterion] = ("best_layer", "mean_over_layers"),
    bases: Sequence[Basis] = ("above_null", "raw"),
) -> pd.DataFrame:
    """Pairwise rank correlations between metrics' model rankings (``metric_agreement`` table).

    Columns :data:`AGREEMENT_COLUMNS`: metric_a, metric_b, criterion, basis (``above_null``: the
    above-null scores, models without a finite null left out; ``raw``: the raw scores), spearman,
    kendall (τ-b), n_models (models scored by both), reason. Fewer than 3 common models or a constant
    score → NaN with a reason; fewer than 2 metrics → one NaN row per (criterion, basis) saying so.
    """
    rows = []
    for basis in bases:
        for criterion in criteria:
            wide = _score_matrix(ranking.dropna(subset=["metric"]), basis, criterion)
            if len(wide.index) < 2:
                rows.append({"metric_a": wide.index[0] if len(wide.index) else np.nan, "metric_b": np.nan,
                             "criterion": criterion, "basis": basis, "spearman": np.nan, "kendall": np.nan,
                             "n_models": 0, "reason": f"{len(wide.index)} metric(s): no pair of metrics to compare"})
                continue
            for a, b in combinations(wide.index, 2):
                x, y = wide.loc[a].to_numpy(dtype=float), wide.loc[b].to_numpy(dtype=float)
                ok = np.isfinite(x) & np.isfinite(y)
                rho = tau = np.nan
                reason = np.nan
                if ok.sum() < 3:
                    reason = f"{int(ok.sum())} model(s) scored by both metrics, fewer than 3"
                elif np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                    reason = "a metric scores all common models equally: no ranking"
                else:
                    rho = float(sps.spearmanr(x[ok], y[ok])[0])
                    tau = float(sps.kendalltau(x[ok], y[ok])[0])
                rows.append({"metric_a": a, "metric_b": b, "criterion": criterion, "basis": basis,
                             "spearman": rho, "kendall": tau, "n_models": int(ok.sum()), "reason": reason})
    out = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    _warn_undefined("metric agreement", out)
    return out


def concordance(
    ranking: pd.DataFrame,
    *,
    criteria: Sequence[Criterion] = ("best_layer", "mean_over_layers"),
    bases: Sequence[Basis] = ("above_null", "raw"),
) -> pd.DataFrame:
    """Kendall's W over all metrics (raters) and the models scored by every metric (items).

    Columns :data:`CONCORDANCE_COLUMNS`; one row per (basis, criterion). Fewer than 2 metrics or 2
    complete models → NaN with a reason.
    """
    rows = []
    for basis in bases:
        for criterion in criteria:
            wide = _score_matrix(ranking.dropna(subset=["metric"]), basis, criterion)
            complete = wide.loc[:, wide.notna().all(axis=0)]
            scores = complete.to_numpy(dtype=float)
            res = kendalls_w_test(rank_descending(scores) if complete.size else np.empty((0, 0)))
            reason = np.nan
            if complete.shape[0] < 2 or complete.shape[1] < 2:
                reason = (f"{complete.shape[0]} metric(s) × {complete.shape[1]} model(s) scored by every metric: "
                          "Kendall's W needs at least 2 of each")
            elif not np.isfinite(res["kendall_w"]):
                reason = "every metric scores all models equally"
            rows.append(
                {
                    "criterion": criterion,
                    "basis": basis,
                    **res,
                    "n_metrics": int(complete.shape[0]),
                    "n_models": int(complete.shape[1]),
                    "n_models_dropped": int(wide.shape[1] - complete.shape[1]),
                    "reason": reason,
                }
            )
    out = pd.DataFrame(rows, columns=CONCORDANCE_COLUMNS)
    _warn_undefined("Kendall's W", out)
    return out


def _warn_undefined(what: str, table: pd.DataFrame) -> None:
    bad = table["reason"].notna()
    if bad.any():
        log.warning("%s: %d of %d rows undefined: %s", what, int(bad.sum()), len(table),
                    "; ".join(sorted(set(table.loc[bad, "reason"].astype(str)))))


@dataclass(frozen=True)
class RankDependence:
    """The three outputs of the rank-dependence analysis."""

    model_ranking: pd.DataFrame
    metric_agreement: pd.DataFrame
    concordance: pd.DataFrame


def rank_dependence(
    *,
    profile: pd.DataFrame,
    subject_values: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    score_col: str = "mean",
    fisher_z_metrics: Collection[str] = (),
    n_perm: int = 10000,
) -> RankDependence:
    """Model ranks per metric, pairwise metric agreement and Kendall's W (both bases) in one call."""
    ranking = rank_models(
        profile=profile, subject_values=subject_values, n_boot=n_boot, seed=seed, score_col=score_col,
        fisher_z_metrics=fisher_z_metrics, n_perm=n_perm,
    )  # fmt: skip
    return RankDependence(ranking, metric_agreement(ranking), concordance(ranking))
