"""Study-level tables: layer profiles, window profiles, topographies and model rankings (stage ``aggregate``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hearlike.io import load_npz_dict, read_tsv, write_tsv
from hearlike.metrics import METRICS
from hearlike.stats import fisher_z, group_summary, inverse_fisher_z, subject_means

log = logging.getLogger(__name__)


def fisher_metrics(names: Sequence[str]) -> list[str]:
    """The metrics whose sentence and subject averages are taken in Fisher-z space."""
    return [m for m in names if METRICS[m].fisher_z]


def layer_table(features: Sequence[Path]) -> pd.DataFrame:
    """model, layer, layer_index, relative_depth from the feature bundles' layer lists (full stack order)."""
    rows = []
    for path in features:
        _, meta = load_npz_dict(path)
        layers = meta["layers"]
        for i, name in enumerate(layers):
            rows.append(dict(model=path.stem, layer=name, layer_index=i,
                             relative_depth=i / (len(layers) - 1) if len(layers) > 1 else np.nan))
    return pd.DataFrame(rows)


def _concat(paths: Sequence[Path]) -> pd.DataFrame:
    frames = [read_tsv(p, dtype={"subject": str, "channel": str}) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise ValueError(f"no rows in any of {len(paths)} tables (first: {paths[0] if paths else 'none'})")
    return pd.concat(frames, ignore_index=True)


def mean_over(df: pd.DataFrame, keys: list[str], *, value: str = "value") -> pd.DataFrame:
    """Mean of ``value`` per ``keys`` in Fisher-z space for correlation metrics (back-transformed)."""
    fisher = df["metric"].isin(fisher_metrics(df["metric"].unique()))
    v = df[value].to_numpy(float)
    tmp = df.assign(_v=np.where(fisher, fisher_z(v), v), _f=fisher)
    out = tmp.groupby(keys, sort=True).agg(_v=("_v", "mean"), _f=("_f", "any"), n=("_v", "count")).reset_index()
    out["mean"] = np.where(out["_f"], inverse_fisher_z(out["_v"].to_numpy(float)), out["_v"])
    return out.drop(columns=["_v", "_f"])


def paired_subject_means(table: pd.DataFrame, *, keys: Sequence[str], min_sentences: int) -> pd.DataFrame:
    """Per (keys, subject): ``value`` over all scored sentences and ``baseline``/``diff`` over the sentences
    that have both a value and a null mean (Fisher z for correlation metrics).

    The test statistic ``diff`` = mean(value − null) uses the same sentences on both sides (a sentence
    with no partner long enough has no null and is left out of it, not compared with other sentences'
    nulls). Below ``min_sentences`` paired sentences a subject's numbers are NaN (reported, never 0).
    """
    fz = fisher_metrics(table["metric"].unique())
    paired = table[np.isfinite(table["value"].to_numpy(float)) & np.isfinite(table["null_mean"].to_numpy(float))]
    means = subject_means(paired, keys=tuple(keys), baseline_col="null_mean", fisher_z_metrics=fz)
    means["diff"] = means["value"] - means["baseline"]
    all_values = subject_means(table, keys=tuple(keys), fisher_z_metrics=fz)[[*keys, "subject", "value"]]
    out = all_values.merge(means.drop(columns=["value"]), on=[*keys, "subject"], how="left")
    out["n_sentences"] = out["n_sentences"].fillna(0).astype(int)
    out["fisher"] = out["fisher"].fillna(False).astype(bool) if "fisher" in out else False
    few = out["n_sentences"] < min_sentences
    if few.any():
        log.warning("%d (unit, subject) means have fewer than %d sentences with a value and a null; NaN",
                    int(few.sum()), min_sentences)
    out.loc[few, ["value", "baseline", "diff"]] = np.nan
    return out


def heldout_lags(subj: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-subject-out lag choice per (model, metric, subject).

    For each subject, the lag whose mean over the other subjects and over the model's layers of
    (value − null) is largest; the subject's own data never choose its lag, so its value at that lag is
    not inflated by the choice (METHODS §4.1). Columns: model, metric, subject, lag_ms.
    """
    rows = []
    for (model, metric), g in subj.groupby(["model", "metric"], sort=True):
        subjects = sorted(g["subject"].unique())
        for s in subjects:
            other = g[g["subject"] != s].groupby("lag_ms")["diff"].mean()
            other = other[np.isfinite(other.to_numpy(float))]
            lag = float(other.idxmax()) if len(other) else (0.0 if 0.0 in set(g["lag_ms"]) else np.nan)
            rows.append(dict(model=model, metric=metric, subject=s, lag_ms=lag))
    return pd.DataFrame(rows, columns=["model", "metric", "subject", "lag_ms"])


def _summary(subj: pd.DataFrame, keys: Sequence[str], statistics: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """Group summary across subjects of value (mean, CI) with the sign-flip test of value − null."""
    return group_summary(subj.assign(baseline=subj["value"] - subj["diff"]), keys=tuple(keys),
                         alternative="greater", n_perm=statistics["n_signflip"], n_boot=statistics["n_bootstrap"],
                         ci=statistics["ci_level"], seed=seed)


def layer_profile(*, values: Sequence[Path], electrodes: Sequence[Path], features: Sequence[Path],
                  statistics: Mapping[str, Any], seed: int, out_profile: Path, out_subjects: Path,
                  out_electrodes: Path, out_lags: Path | None = None) -> pd.DataFrame:
    """Step function: the layer profile of every (model, metric) with subject-level inference.

    Sentences are averaged within subject (Fisher z for RSA-type metrics), and subjects are the unit
    of inference: CI over subjects, and a sign-flip test of (value − sentence-mismatch null) across
    subjects, BH-FDR across models × layers × metrics. Reported at the lag chosen on held-out subjects
    (:func:`heldout_lags`; ``lag_ms`` = the median of the subjects' lags, ``lag_ms_min``/``lag_ms_max``
    their range), with the paper-faithful lag-0 numbers as ``*_lag0`` columns. ``above_null`` is the mean
    of (value − null) across subjects. ``out_lags`` gets the lag profile (value − null per lag).
    """
    table = _concat(values)
    keys = ["model", "layer", "metric", "lag_ms"]
    subj = paired_subject_means(table, keys=keys, min_sentences=int(statistics["min_sentences"]))
    chosen = heldout_lags(subj)
    at_lag = subj.merge(chosen, on=["model", "metric", "subject", "lag_ms"], how="inner")
    lag0 = subj[subj["lag_ms"] == 0]
    unit = ["model", "layer", "metric"]
    main = _summary(at_lag, unit, statistics, seed)
    paper = _summary(lag0, unit, statistics, seed)
    main = main.merge(_above_null(at_lag, unit), on=unit, how="left")
    lag_range = chosen.groupby(["model", "metric"])["lag_ms"].agg(["median", "min", "max"]).reset_index()
    lag_range.columns = ["model", "metric", "lag_ms", "lag_ms_min", "lag_ms_max"]
    main = main.merge(lag_range, on=["model", "metric"], how="left")
    paper = paper.merge(_above_null(lag0, unit), on=unit, how="left")
    paper = paper[[*unit, "mean", "above_null", "p_signflip", "q_fdr"]].rename(
        columns={c: f"{c}_lag0" for c in ["mean", "above_null", "p_signflip", "q_fdr"]})
    profile = main.merge(paper, on=unit, how="left").merge(layer_table(features), on=["model", "layer"], how="left")
    profile["family"] = profile["metric"].map(lambda m: METRICS[m].family)
    cols = ["model", "layer", "layer_index", "relative_depth", "metric", "family", "lag_ms", "lag_ms_min",
            "lag_ms_max", "mean", "ci_low", "ci_high", "above_null", "n_subjects", "n_excluded", "n_sentences",
            "p_signflip", "q_fdr", "mean_lag0", "above_null_lag0", "p_signflip_lag0", "q_fdr_lag0"]
    profile = profile.merge(at_lag.groupby(unit)["n_sentences"].median().rename("n_sentences").reset_index(),
                            on=unit, how="left")
    profile = profile[cols].sort_values(["model", "metric", "layer_index"], kind="stable")
    write_tsv(profile, out_profile)

    subj_out = at_lag.copy()
    back = subj_out["fisher"].to_numpy(bool)
    for col in ("value", "baseline"):
        v = subj_out[col].to_numpy(float)
        subj_out[col] = np.where(back, inverse_fisher_z(v), v)
    subj_out = subj_out.rename(columns={"baseline": "null_mean"})
    subj_out = subj_out[["model", "layer", "metric", "lag_ms", "subject", "value", "null_mean", "diff",
                         "n_sentences"]]
    write_tsv(subj_out, out_subjects)

    if out_lags is not None:
        write_tsv(lag_profile(subj, statistics=statistics, seed=seed), out_lags)
    per_electrode = _concat(electrodes)
    write_tsv(mean_over(per_electrode, ["model", "layer", "metric", "channel"]).rename(columns={"n": "n_subjects"}),
              out_electrodes)
    log.info("layer profile: %d rows, %d subjects", len(profile), subj["subject"].nunique())
    return profile


def _above_null(subj: pd.DataFrame, unit: Sequence[str]) -> pd.DataFrame:
    """Mean over subjects of (value − null) per unit (in Fisher z for correlation metrics)."""
    return subj.groupby(list(unit))["diff"].mean().rename("above_null").reset_index()


def lag_profile(subj: pd.DataFrame, *, statistics: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """(value − null) across subjects per (model, layer, metric, lag): mean, CI, sign-flip p (descriptive:
    the lag sweep's own multiple comparisons are not corrected; the profile's lag is chosen held-out)."""
    diff = subj.assign(value=subj["diff"], baseline=np.nan, fisher=False)
    out = group_summary(diff, keys=("model", "layer", "metric", "lag_ms"), alternative="greater",
                        n_perm=statistics["n_signflip"], n_boot=statistics["n_bootstrap"],
                        ci=statistics["ci_level"], seed=seed)
    return out.rename(columns={"mean": "above_null"}).drop(columns=["q_fdr"])


#: The window contrasts of finding (ii): the paper's 250–500 ms window against each early ERP window.
WINDOW_CONTRASTS: tuple[tuple[str, str], ...] = (("w250_500_paper", "N100"), ("w250_500_paper", "P200"))
WINDOW_CONTRAST_COLUMNS = ["model", "layer", "metric", "lock", "window_a", "window_b", "diff", "ci_low", "ci_high",
                           "n_subjects", "p_signflip", "q_fdr", "reason"]


def window_profile(*, tables: Sequence[Path], statistics: Mapping[str, Any], seed: int, out_profile: Path,
                   out_topography: Path, out_contrast: Path | None = None,
                   erp: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Step function: whole-scalp window profiles tested against the mismatch null, per-channel topographies
    and the window contrast table.

    Per (model, layer, metric, lock, window) and subject: ``value`` and ``null_mean`` (the EEG-side sentence
    mismatch of :func:`hearlike.analysis.window_job`; one row per subject, so ``min_sentences`` does not
    apply). ``mean``/``ci_low``/``ci_high`` describe the value across subjects (those without a null
    included); ``p_signflip`` (one-sided,
    sign flips across subjects) and ``q_fdr`` (BH over the table) test value − null, whose subject mean is
    ``above_null`` (Fisher z for RSA). Testing the value against 0 would find every window: overlapping
    neighbouring words and smooth model states make word-locked RSA positive with no EEG response at all.
    A unit without any null gets NaN p, never a test against 0. ``topography.tsv`` adds ``above_null``
    per channel; ``out_contrast`` gets :func:`window_contrast` (``erp``: the config's ``windows.erp``).
    """
    from hearlike.stats import bh_fdr

    df = _concat(tables)
    if "null_mean" not in df:
        log.warning("window tables have no null_mean column (made before the window null): p and q are NaN")
        df["null_mean"] = np.nan
    keys = ["model", "layer", "metric", "lock", "window", "start_ms", "end_ms"]
    scalp = df[df["channel"] == "all"]
    # one row per subject and unit (no sentences to count): a subject without a null keeps its value in
    # ``mean`` and is left out of the test
    subj = paired_subject_means(scalp, keys=keys, min_sentences=0)
    summary = _summary(subj, keys, statistics, seed).merge(_above_null(subj, keys), on=keys, how="left")
    # group_summary tests against 0 when a unit has no baseline at all; here that is a missing null
    no_null = ~np.isfinite(summary["above_null"].to_numpy(float))
    if no_null.any():
        log.warning("%d window units have no finite null: p_signflip NaN", int(no_null.sum()))
        summary.loc[no_null, "p_signflip"] = np.nan
        summary["q_fdr"] = bh_fdr(summary["p_signflip"].to_numpy(float))
    profile = summary[[*keys, "mean", "ci_low", "ci_high", "above_null", "n_subjects", "p_signflip", "q_fdr"]]
    profile = profile.sort_values(["model", "metric", "layer", "start_ms", "end_ms"], kind="stable")
    write_tsv(profile, out_profile)

    topo_keys = ["model", "layer", "metric", "lock", "window", "channel"]
    channels = df[df["channel"] != "all"]
    topo = mean_over(channels, topo_keys).rename(columns={"n": "n_subjects"})
    per_channel = paired_subject_means(channels, keys=topo_keys, min_sentences=0)
    topo = topo.merge(_above_null(per_channel, topo_keys), on=topo_keys, how="left")
    write_tsv(topo, out_topography)

    if out_contrast is not None:
        write_tsv(window_contrast(subj, statistics=statistics, seed=seed, erp=erp), out_contrast)
    return profile


def window_contrast(subj: pd.DataFrame, *, statistics: Mapping[str, Any], seed: int,
                    erp: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The paper's window against each early ERP window (:data:`WINDOW_CONTRASTS`), on the null-corrected scale.

    Input: :func:`paired_subject_means` rows per (model, layer, metric, lock, window, subject) with ``diff``
    = value − null (Fisher z for RSA). Per subject ``diff`` = diff(window_a) − diff(window_b); mean, CI and
    one-sided sign-flip p (a > b) across subjects with :func:`hearlike.stats.group_summary`, BH over the
    table. A contrast whose window is not among the config's ERP windows (``erp``) or not in the tables
    gets one row with its ``reason`` (and a WARNING); the rest of the row is NaN.
    """
    unit = ["model", "layer", "metric", "lock"]
    present = set(subj["window"])
    declared = set(erp) if erp is not None else present
    parts, reasons = [], []
    for a, b in WINDOW_CONTRASTS:
        missing = [w for w in (a, b) if w not in declared or w not in present]
        if missing:
            where = "windows.erp" if any(w not in declared for w in missing) else "the window tables"
            log.warning("window contrast %s vs %s: %s not in %s; not tested", a, b, missing, where)
            reasons.append(dict(window_a=a, window_b=b, reason=f"window {', '.join(missing)} not in {where}"))
            continue
        cols = [*unit, "subject", "diff"]
        pair = subj.loc[subj["window"] == a, cols].merge(subj.loc[subj["window"] == b, cols],
                                                         on=[*unit, "subject"], suffixes=("_a", "_b"))
        # the difference is already on the tested scale (z for RSA): no baseline, no back-transform
        parts.append(pair.assign(window_a=a, window_b=b, value=pair["diff_a"] - pair["diff_b"],
                                 baseline=np.nan, fisher=False))
    out = pd.DataFrame(columns=WINDOW_CONTRAST_COLUMNS)
    if parts:
        test = group_summary(pd.concat(parts, ignore_index=True), keys=(*unit, "window_a", "window_b"),
                             alternative="greater", n_perm=statistics["n_signflip"],
                             n_boot=statistics["n_bootstrap"], ci=statistics["ci_level"], seed=seed)
        out = test.rename(columns={"mean": "diff"}).assign(reason="")
    if reasons:
        out = pd.concat([out, pd.DataFrame(reasons)], ignore_index=True)
    return out.reindex(columns=WINDOW_CONTRAST_COLUMNS)


def rank_models(*, profile: Path, subjects: Path, n_bootstrap: int, seed: int, out_ranking: Path,
                out_agreement: Path, n_signflip: int = 10000) -> pd.DataFrame:
    """Step function: ranks of models per metric, agreement between metric rankings, Kendall's W, stability.

    Both on the above-null basis (score − the model's own null, primary) and on raw scores (the paper's);
    see :func:`hearlike.ranking.rank_models`. ``metric_agreement.tsv`` holds the pairwise rows and, with
    ``metric_a`` = ALL and ``metric_b`` = kendall_w, one Kendall's W row per (criterion, basis).
    """
    from hearlike import ranking

    prof = read_tsv(profile)
    subj = read_tsv(subjects, dtype={"subject": str})
    metrics = pd.concat([prof["metric"], subj["metric"]]).dropna().unique() if len(prof) or len(subj) else []
    result = ranking.rank_dependence(profile=prof, subject_values=subj, n_boot=n_bootstrap, seed=seed,
                                     fisher_z_metrics=fisher_metrics(list(metrics)), n_perm=n_signflip)
    write_tsv(result.model_ranking, out_ranking)
    w = result.concordance.assign(metric_a="ALL", metric_b="kendall_w")
    cols = [*ranking.AGREEMENT_COLUMNS[:-1], *[c for c in ranking.CONCORDANCE_COLUMNS
                                                if c not in ranking.AGREEMENT_COLUMNS], "reason"]
    parts = [f for f in (result.metric_agreement, w) if len(f)]
    agreement = pd.concat(parts, ignore_index=True).reindex(columns=cols)
    write_tsv(agreement, out_agreement)
    return result.model_ranking
