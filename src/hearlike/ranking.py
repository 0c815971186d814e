"""Model ranking across metrics: the paper's "rank-dependence split" (METHODS §6.3).

Per metric, the models are ranked (1 = most brain-like) by their best layer's score and by their
mean over layers; agreement between metrics is quantified by pairwise Spearman/Kendall correlations of
those rankings and by Kendall's W over all metrics; a bootstrap over subjects tells how stable each
model's rank is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from hearlike.stats import rank_average

Criterion = Literal["best_layer", "mean_over_layers"]
_SCORE_COL: dict[str, str] = {"best_layer": "score", "mean_over_layers": "score_mean_over_layers"}


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
# per-metric model ranks


def layer_summaries(profile: pd.DataFrame, *, score_col: str = "mean") -> pd.DataFrame:
    """Per (model, metric): best layer and its score, and the mean score over layers (NaN layers skipped)."""
    rows = []
    for (model, metric), g in profile.groupby(["model", "metric"], sort=True):
        v = g[score_col].to_numpy(dtype=float)
        finite = np.isfinite(v)
        if finite.any():
            i = int(np.flatnonzero(finite)[np.argmax(v[finite])])
            best_layer, best, mean = g["layer"].iloc[i], float(v[i]), float(v[finite].mean())
        else:
            best_layer, best, mean = None, np.nan, np.nan
        rows.append(
            {
                "model": model,
                "metric": metric,
                "best_layer": best_layer,
                "score": best,
                "score_mean_over_layers": mean,
            }
        )
    return pd.DataFrame(rows, columns=["model", "metric", "best_layer", "score", "score_mean_over_layers"])


def _add_ranks(summary: pd.DataFrame) -> pd.DataFrame:
    out = summary.copy()
    out["rank"] = np.nan
    out["rank_mean_over_layers"] = np.nan
    for _, idx in out.groupby("metric", sort=False).groups.items():
        out.loc[idx, "rank"] = rank_descending(out.loc[idx, "score"].to_numpy(dtype=float))
        out.loc[idx, "rank_mean_over_layers"] = rank_descending(
            out.loc[idx, "score_mean_over_layers"].to_numpy(dtype=float)
        )
    return out


def bootstrap_best_layer_ranks(
    subject_values: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, value_col: str = "value"
) -> tuple[pd.DataFrame, np.ndarray]:
    """Best-layer model ranks per metric in ``n_boot`` resamples of subjects (with replacement).

    ``subject_values`` has model, layer, metric, subject, value (e.g. :func:`hearlike.stats.subject_means`,
    in Fisher-z space where that applies: the best layer and the ranks are unchanged by tanh). One
    resample of subjects is shared by all models, layers and metrics, as they were measured on the same
    people. Returns the (model, metric) index table and ranks of shape (n_pairs, n_boot).
    """
    wide = subject_values.pivot_table(
        index=["metric", "model", "layer"], columns="subject", values=value_col, aggfunc="mean", dropna=False
    )
    v = wide.to_numpy(dtype=float)
    have = np.isfinite(v)
    v0 = np.where(have, v, 0.0)
    rng = np.random.default_rng(seed)
    n_sub = v.shape[1]
    # multinomial counts: resampling subjects with replacement as weights, one row per resample
    weights = rng.multinomial(n_sub, np.full(n_sub, 1.0 / n_sub), size=n_boot).T.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (v0 @ weights) / (have.astype(float) @ weights)  # (rows, n_boot)
    keys = wide.index.to_frame(index=False)[["metric", "model"]]
    pair_codes, pairs = pd.factorize(pd.MultiIndex.from_frame(keys), sort=True)
    best = np.full((len(pairs), n_boot), -np.inf)
    np.fmax.at(best, pair_codes, means)
    best[np.isneginf(best)] = np.nan
    pair_table = pd.DataFrame(list(pairs), columns=["metric", "model"])
    ranks = np.full(best.shape, np.nan)
    for _, idx in pair_table.groupby("metric", sort=False).groups.items():
        ranks[idx] = rank_descending(best[idx].T).T
    return pair_table, ranks


def rank_models(
    *,
    profile: pd.DataFrame,
    subject_values: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    score_col: str = "mean",
) -> pd.DataFrame:
    """The ``model_ranking`` table: per (model, metric) its rank by best layer and by mean over layers.

    Columns: model, metric, rank, best_layer, score, rank_mean_over_layers, score_mean_over_layers,
    rank_stability (fraction of subject bootstrap resamples in which the model keeps its best-layer
    rank) and rank_sd (SD of its bootstrap ranks); both NaN without ``subject_values``.
    """
    table = _add_ranks(layer_summaries(profile, score_col=score_col))
    table["rank_stability"] = np.nan
    table["rank_sd"] = np.nan
    if subject_values is not None and len(subject_values):
        pairs, boot = bootstrap_best_layer_ranks(subject_values, n_boot=n_boot, seed=seed)
        lookup = {(me, mo): i for i, (me, mo) in enumerate(pairs.itertuples(index=False))}
        for row in table.itertuples():
            i = lookup.get((row.metric, row.model))
            if i is None or not np.isfinite(row.rank):
                continue
            b = boot[i]
            table.loc[row.Index, "rank_stability"] = float(np.mean(np.isclose(b, row.rank)))
            table.loc[row.Index, "rank_sd"] = (
                float(np.nanstd(b, ddof=1)) if np.isfinite(b).sum() > 1 else np.nan
            )
    cols = [
        "model", "metric", "rank", "best_layer", "score", "rank_mean_over_layers",
        "score_mean_over_layers", "rank_stability", "rank_sd",
    ]  # fmt: skip
    return table[cols].sort_values(["metric", "rank", "model"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# agreement between metrics


def _score_matrix(ranking: pd.DataFrame, criterion: Criterion) -> pd.DataFrame:
    return ranking.pivot_table(index="metric", columns="model", values=_SCORE_COL[criterion], dropna=False)


def metric_agreement(
    ranking: pd.DataFrame, *, criteria: Sequence[Criterion] = ("best_layer", "mean_over_layers")
) -> pd.DataFrame:
    """Pairwise rank correlations between metrics' model rankings (``metric_agreement`` table).

    Columns: metric_a, metric_b, criterion, spearman, kendall (τ-b), n_models (models scored by both);
    fewer than 3 common models → NaN.
    """
    rows = []
    for criterion in criteria:
        wide = _score_matrix(ranking, criterion)
        for a, b in combinations(wide.index, 2):
            x, y = wide.loc[a].to_numpy(dtype=float), wide.loc[b].to_numpy(dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                rho = float(sps.spearmanr(x[ok], y[ok])[0])
                tau = float(sps.kendalltau(x[ok], y[ok])[0])
            else:
                rho = tau = np.nan
            rows.append(
                {
                    "metric_a": a,
                    "metric_b": b,
                    "criterion": criterion,
                    "spearman": rho,
                    "kendall": tau,
                    "n_models": int(ok.sum()),
                }
            )
    return pd.DataFrame(
        rows, columns=["metric_a", "metric_b", "criterion", "spearman", "kendall", "n_models"]
    )


def concordance(
    ranking: pd.DataFrame, *, criteria: Sequence[Criterion] = ("best_layer", "mean_over_layers")
) -> pd.DataFrame:
    """Kendall's W over all metrics (raters) and the models scored by every metric (items).

    Columns: criterion, kendall_w, chi2, df, p_value, n_metrics, n_models, n_models_dropped.
    """
    rows = []
    for criterion in criteria:
        wide = _score_matrix(ranking, criterion)
        complete = wide.loc[:, wide.notna().all(axis=0)]
        res = (
            kendalls_w_test(rank_descending(complete.to_numpy(dtype=float)))
            if complete.size
            else kendalls_w_test(np.empty((0, 0)))
        )
        rows.append(
            {
                "criterion": criterion,
                **res,
                "n_metrics": int(complete.shape[0]),
                "n_models": int(complete.shape[1]),
                "n_models_dropped": int(wide.shape[1] - complete.shape[1]),
            }
        )
    return pd.DataFrame(rows)


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
) -> RankDependence:
    """Model ranks per metric, pairwise metric agreement and Kendall's W in one call."""
    ranking = rank_models(
        profile=profile, subject_values=subject_values, n_boot=n_boot, seed=seed, score_col=score_col
    )
    return RankDependence(ranking, metric_agreement(ranking), concordance(ranking))
