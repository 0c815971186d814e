"""Per-subject analysis jobs: one metric against every layer of one model (with nulls), and time windows."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hearlike import nulls as null_dist
from hearlike.align import group_layers, zscore_columns
from hearlike.io import load_npz_dict, sentence_key, write_tsv
from hearlike.metrics import METRICS, compute_battery
from hearlike.seeding import rng as make_rng
from hearlike.stats import fisher_z, inverse_fisher_z

log = logging.getLogger(__name__)
#: the paper's frame-permutation null is computed only for the metric it was written for (code-faithful column)
FRAMEPERM_METRICS = ("rsa_spearman",)


def sentence_pair(aligned: Mapping[str, np.ndarray], feats: Mapping[str, np.ndarray], timebase: str,
                  layers: list[str], sid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (T × C) z-scored EEG, Y (L × T × k) layer features, frame times) on the frames valid on both sides.

    Frames with NaN (EEG past the recording, degenerate PCA) and channels constant over the sentence are
    dropped rather than zero-filled, so that they cannot bias a metric.
    """
    key = sentence_key(sid)
    X = zscore_columns(aligned[f"{timebase}/{key}"].astype(np.float64))
    Y = np.stack([feats[f"{layer}/{key}"].astype(np.float64) for layer in layers])
    times = feats[f"{timebase}/{key}.times"]
    X = X[:, np.isfinite(X).all(axis=0)]
    frames = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=(0, 2))
    return X[frames], Y[:, frames], times[frames]


def metric_job(*, metric: str, model: str, subject: str, aligned: Path, features: Path,
               settings: Mapping[str, Any], nulls: Mapping[str, Any], per_electrode: bool, seed: int,
               out_values: Path, out_electrodes: Path) -> pd.DataFrame:
    """Step function: ``metric`` for every (sentence, layer) of one subject and model, plus its nulls.

    Columns: observed value, the circular-shift null (mean, SD, p), the sentence-mismatch null (mean, p)
    and, for RSA-Spearman, the paper's frame-permutation p-value (code-faithful, anti-conservative).
    """
    eeg, emeta = load_npz_dict(aligned)
    feats, fmeta = load_npz_dict(features)
    spec = METRICS[metric]
    settings = dict(settings)
    rows: list[dict[str, Any]] = []
    electrode_rows: list[dict[str, Any]] = []
    sids = [int(s) for s in emeta["sentence_ids"]]
    rng = make_rng(seed, "metric", model, metric, subject)

    def battery(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return compute_battery(X, Y, metrics=[metric], settings={metric: settings})[metric]

    for timebase, layers in group_layers(fmeta["layers"]).items():
        pairs = {sid: sentence_pair(eeg, feats, timebase, layers, sid) for sid in sids}
        per_el: list[np.ndarray] = []
        for sid, (X, Y, times) in pairs.items():
            T = len(X)
            observed = battery(X[None], Y)[0] if T >= 3 else np.full(len(layers), np.nan)
            rate = 1.0 / float(np.median(np.diff(times[:, 0]))) if T > 1 else np.nan
            shift_idx = null_dist.circular_shift_indices(
                null_dist.draw_circular_shifts(n_frames=T, frame_rate_hz=rate, min_shift_s=nulls_cfg(nulls, "min_shift_s"),
                                           n_shifts=nulls_cfg(nulls, "circular_shift"), rng=rng), T) if T >= 3 else np.empty((0, T), int)
            shift = _reindexed_scores(battery, X, Y, shift_idx)
            if metric in FRAMEPERM_METRICS and nulls_cfg(nulls, "frame_permutation") > 0 and T >= 3:
                perm_idx = null_dist.draw_frame_permutations(n_frames=T, n_perm=nulls_cfg(nulls, "frame_permutation"), rng=rng)
                perm = _reindexed_scores(battery, X, Y, perm_idx)
            else:
                perm = np.empty((len(layers), 0))
            for li, layer in enumerate(layers):
                s = null_dist.summarize_null(float(observed[li]), shift[li])
                p_perm = null_dist.p_value_greater(float(observed[li]), perm[li]) if perm.shape[1] else np.nan
                rows.append(dict(subject=subject, sentence_id=sid, model=model, layer=layer, metric=metric,
                                 value=float(observed[li]), n_frames=T, null_mean=s.null_mean, null_sd=s.null_sd,
                                 p_shift=s.p_value, p_frameperm_codefaithful=p_perm))
            if per_electrode:
                Xe = X.T[:, :, None]
                per_el.append(battery(Xe, Y) if T >= 3 else np.full((X.shape[1], len(layers)), np.nan))
        _add_mismatch(rows, pairs, layers, battery, nulls_cfg(nulls, "sentence_mismatch"), rng)
        if per_electrode and per_el:
            stack = np.stack(per_el)  # sentences × channels × layers
            pooled = inverse_fisher_z(np.nanmean(fisher_z(stack), axis=0)) if spec.fisher_z else np.nanmean(stack, axis=0)
            for ci, ch in enumerate(emeta["ch_names"]):
                for li, layer in enumerate(layers):
                    electrode_rows.append(dict(subject=subject, model=model, layer=layer, metric=metric, channel=ch,
                                               value=float(pooled[ci, li])))
    table = pd.DataFrame(rows).sort_values(["layer", "sentence_id"], kind="stable")
    n_nan = int(table["value"].isna().sum())
    if n_nan:
        log.warning("%d of %d (sentence, layer) values are NaN (degenerate input); they are excluded downstream",
                    n_nan, len(table))
    write_tsv(table, out_values)
    write_tsv(pd.DataFrame(electrode_rows, columns=["subject", "model", "layer", "metric", "channel", "value"]),
              out_electrodes)
    return table


def nulls_cfg(cfg: Mapping[str, Any], key: str) -> Any:
    """A null setting, with the error naming the config key when it is missing."""
    if key not in cfg:
        raise KeyError(f"config.yaml: nulls.{key} is required")
    return cfg[key]


def _reindexed_scores(battery: Any, X: np.ndarray, Y: np.ndarray, idx: np.ndarray, chunk: int = 32) -> np.ndarray:
    """(L, B) scores of X against every layer's features re-indexed in time by each row of ``idx``."""
    L, B = Y.shape[0], idx.shape[0]
    if B == 0:
        return np.empty((L, 0))
    out = np.empty((L, B))
    for a in range(0, B, chunk):
        sub = idx[a : a + chunk]
        Ys = Y[:, sub].reshape(L * len(sub), *Y.shape[1:])  # (L·b, T, k)
        out[:, a : a + len(sub)] = battery(X[None], Ys)[0].reshape(L, len(sub))
    return out


def _add_mismatch(rows: list[dict[str, Any]], pairs: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
                  layers: list[str], battery: Any, n_mismatch: int, rng: np.random.Generator) -> None:
    """Sentence-mismatch null per (sentence, layer): EEG of s against the features of other sentences."""
    sids = [sid for sid, (X, _, _) in pairs.items() if len(X) >= 3]
    by_key = {(r["sentence_id"], r["layer"]): r for r in rows if r["layer"] in layers}
    for r in by_key.values():
        r.setdefault("mismatch_null_mean", np.nan)
        r.setdefault("p_mismatch", np.nan)
    if n_mismatch == 0 or len(sids) < 2:
        return
    n_channels = min(pairs[s][0].shape[1] for s in sids)
    for li, layer in enumerate(layers):
        scores = null_dist.mismatch_score_matrix(eeg=[pairs[s][0][:, :n_channels] for s in sids],
                                             model=[pairs[s][1][li] for s in sids],
                                             score_matrix=battery)
        for sid, res in zip(sids, null_dist.sentence_mismatch_null_per_sentence(scores, n_mismatch=n_mismatch, rng=rng),
                            strict=True):
            by_key[(sid, layer)]["mismatch_null_mean"] = res.null_mean
            by_key[(sid, layer)]["p_mismatch"] = res.p_value
