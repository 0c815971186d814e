"""Workflow step that draws every figure of one dataset from its tidy tables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hearlike import figures
from hearlike.io import load_npz_dict, read_tsv, sentence_key


def correlation_rdm(x: np.ndarray) -> np.ndarray:
    """T × T correlation distance between the rows (frames) of ``x``."""
    return 1.0 - np.corrcoef(x)


def best_layers(profile: pd.DataFrame, metric: str) -> pd.DataFrame:
    """model, layer: each model's best layer for ``metric``."""
    rows = profile[profile["metric"] == metric].dropna(subset=["mean"])
    return rows.loc[rows.groupby("model")["mean"].idxmax(), ["model", "layer", "mean"]]


def make_figures(*, tables_dir: Path, inputs: Mapping[str, Any], montage: str, dpi: int, depth_axis: str,
                 outputs: Mapping[str, Path]) -> None:
    """Step function: F1–F9 (METHODS §9) for one dataset."""
    t = {name: read_tsv(tables_dir / f"{name}.tsv") for name in
         ["layer_profile", "window_profile", "topography", "model_ranking", "metric_agreement", "prosody_groups"]}
    profile = t["layer_profile"]
    figures.plot_layer_profiles(layer_profile=profile, out=outputs["layer_profiles"], x=depth_axis, dpi=dpi)
    # F2/F3 show the primary ranking: best-layer scores above each model's own null (``rank``)
    agreement = t["metric_agreement"]
    agreement = agreement[(agreement["criterion"] == "best_layer") & (agreement["basis"] == "above_null")]
    w_row = agreement[agreement["metric_b"] == "kendall_w"]
    kendall_w = float(w_row["kendall_w"].iloc[0]) if len(w_row) else float("nan")
    # reason-only rows (too few metrics or models) carry no metric pair and nothing to draw
    pairs = agreement[(agreement["metric_a"] != "ALL") & agreement["metric_b"].notna()]
    ranking_rows = t["model_ranking"].dropna(subset=["metric"])
    figures.plot_ranking_heatmap(model_ranking=ranking_rows, metric_agreement=pairs, kendall_w=kendall_w,
                                 out=outputs["ranking_heatmap"], dpi=dpi)
    figures.plot_best_layer_bars(model_ranking=ranking_rows, out=outputs["best_layer_bars"], dpi=dpi,
                                 score_col="above_null", layer_col="best_layer")

    windows = t["window_profile"]
    metric = windows["metric"].iloc[0]
    best = best_layers(profile, metric)
    window_best = {m: layer for m, layer in zip(best["model"], best["layer"], strict=True)}
    erp = [w for w in windows["window"].unique() if not str(w).startswith("sl")]
    starts = windows.drop_duplicates("window").set_index("window")["start_ms"]
    erp_by_onset = sorted(erp, key=lambda w: (starts[w], str(w)))
    figures.plot_window_timecourse(window_profile=windows, out=outputs["window_timecourse"], layers=window_best,
                                   erp_windows=erp, dpi=dpi)
    top = best.sort_values("mean").iloc[-1]
    topo = t["topography"]
    figures.plot_topomaps(topography=topo[topo["lock"] == topo["lock"].iloc[0]], montage=montage,
                          out=outputs["topomaps"], windows=erp_by_onset,
                          model=top["model"], layer=top["layer"], metric=metric, dpi=dpi)
    figures.plot_prosody_groups(prosody_groups=t["prosody_groups"],
                                per_subject=read_tsv(inputs["prosody_subjects"], dtype={"subject": str}),
                                out=outputs["prosody_groups"], dpi=dpi)
    tnc = read_tsv(inputs["tnc"])
    null = read_tsv(inputs["tnc_null"])
    observed = null.loc[null["statistic"] == "overlap_mean", "observed"]
    figures.plot_tnc(tnc=tnc, null_overlap=None, observed_overlap=float(observed.iloc[0]) if len(observed) else None,
                     out=outputs["tnc"], dpi=dpi)
    rsa_tables = [p for p in inputs["values"] if Path(p).stem == metric]
    metric_rows = pd.concat([read_tsv(p) for p in rsa_tables], ignore_index=True)
    figures.plot_null_diagnostics(metric_rows=metric_rows[metric_rows["lag_ms"] == 0], out=outputs["null_diagnostics"],
                                  dpi=dpi)

    # F6: one sentence of the first subject, the overall best model layer against the EEG, exactly the frames,
    # channels and z-scoring the metric scored (lag 0)
    from hearlike.align import timebase_of
    from hearlike.analysis import sentence_pair

    feats, _fmeta = load_npz_dict(next(Path(p) for p in inputs["features"] if Path(p).stem == top["model"]))
    aligned_path = next(Path(p) for p in inputs["aligned"] if Path(p).parent.name == top["model"])
    eeg, emeta = load_npz_dict(aligned_path)
    layer = str(top["layer"])
    sid = next(int(s) for s in emeta["sentence_ids"] if f"{layer}/{sentence_key(int(s))}" in feats)
    x, y, _ = sentence_pair(eeg, feats, timebase_of(layer), [layer], sid, 0.0)
    y = y[0]
    figures.plot_lag_profile(lag_profile=read_tsv(tables_dir / "lag_profile.tsv"), layer_profile=profile,
                             out=outputs["lag_profile"], dpi=dpi)
    figures.plot_rdm_pair(model_rdm=correlation_rdm(y), eeg_rdm=correlation_rdm(x), out=outputs["rdm_pair"],
                          title=f"{top['model']} {top['layer']} vs EEG, sub-{emeta['subject']} sentence {sid}", dpi=dpi)
