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


def layer_profile(*, values: Sequence[Path], electrodes: Sequence[Path], features: Sequence[Path], statistics: Mapping[str, Any], seed: int,
                  out_profile: Path, out_subjects: Path, out_electrodes: Path) -> pd.DataFrame:
    """Step function: the layer profile of every (model, metric) with subject-level inference.

    Sentences are averaged within subject (Fisher z for RSA-type metrics), and subjects are the unit
    of inference: bootstrap CI over subjects, and a sign-flip test of (value − circular-shift null mean)
    across subjects, BH-FDR across models × layers × metrics.
    """
    table = _concat(values)
    fz = fisher_metrics(table["metric"].unique())
    subj = subject_means(table, keys=("model", "layer", "metric"), baseline_col="null_mean", fisher_z_metrics=fz)
    summary = group_summary(subj, keys=("model", "layer", "metric"), alternative="greater",
                            n_perm=statistics["n_signflip"], n_boot=statistics["n_bootstrap"],
                            ci=statistics["ci_level"], seed=seed)
    layers = layer_table(features)
    profile = summary.merge(layers, on=["model", "layer"], how="left")
    profile["family"] = profile["metric"].map(lambda m: METRICS[m].family)
    cols = ["model", "layer", "layer_index", "relative_depth", "metric", "family", "mean", "ci_low", "ci_high",
            "n_subjects", "n_excluded", "p_signflip", "q_fdr"]
    profile = profile[cols].sort_values(["model", "metric", "layer_index"], kind="stable")
    write_tsv(profile, out_profile)

    subj_out = subj.copy()
    subj_out["value"] = np.where(subj_out["fisher"], inverse_fisher_z(subj_out["value"].to_numpy(float)), subj_out["value"])
    subj_out["baseline"] = np.where(subj_out["fisher"], inverse_fisher_z(subj_out["baseline"].to_numpy(float)),
                                    subj_out["baseline"])
    subj_out = subj_out.rename(columns={"baseline": "null_mean"}).drop(columns=["fisher"])
    write_tsv(subj_out, out_subjects)

    per_electrode = _concat(electrodes)
    write_tsv(mean_over(per_electrode, ["model", "layer", "metric", "channel"]).rename(columns={"n": "n_subjects"}),
              out_electrodes)
    log.info("layer profile: %d rows, %d subjects", len(profile), subj["subject"].nunique())
    return profile


def window_profile(*, tables: Sequence[Path], statistics: Mapping[str, Any], seed: int, out_profile: Path,
                   out_topography: Path) -> pd.DataFrame:
    """Step function: whole-scalp window profiles with bootstrap CIs, and per-channel topographies."""
    df = _concat(tables)
    keys = ["model", "layer", "metric", "lock", "window", "start_ms", "end_ms"]
    scalp = df[df["channel"] == "all"]
    fz = fisher_metrics(scalp["metric"].unique())
    subj = subject_means(scalp, keys=tuple(keys), fisher_z_metrics=fz)
    summary = group_summary(subj, keys=tuple(keys), alternative="greater", n_perm=statistics["n_signflip"],
                            n_boot=statistics["n_bootstrap"], ci=statistics["ci_level"], seed=seed)
    profile = summary[[*keys, "mean", "ci_low", "ci_high", "n_subjects", "p_signflip", "q_fdr"]]
    profile = profile.sort_values(["model", "metric", "layer", "start_ms", "end_ms"], kind="stable")
    write_tsv(profile, out_profile)
    topo = mean_over(df[df["channel"] != "all"], ["model", "layer", "metric", "lock", "window", "channel"])
    write_tsv(topo.rename(columns={"n": "n_subjects"}), out_topography)
    return profile


def rank_models(*, profile: Path, subjects: Path, n_bootstrap: int, seed: int, out_ranking: Path,
                out_agreement: Path) -> pd.DataFrame:
    """Step function: ranks of models per metric, agreement between metric rankings, Kendall's W, stability."""
    from hearlike import ranking

    prof = read_tsv(profile)
    subj = read_tsv(subjects, dtype={"subject": str})
    result = ranking.rank_dependence(profile=prof, subject_values=subj, n_boot=n_bootstrap, seed=seed)
    write_tsv(result.model_ranking, out_ranking)
    w = result.concordance
    agreement = pd.concat([result.metric_agreement,
                           w.assign(metric_a="ALL", metric_b="kendall_w")], ignore_index=True)
    write_tsv(agreement, out_agreement)
    return result.model_ranking
