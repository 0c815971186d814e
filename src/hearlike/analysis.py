"""Per-subject analysis jobs: one metric against every layer of one model (with nulls), and time windows."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hearlike import nulls as null_dist
from hearlike.align import group_layers, zscore_columns
from hearlike.io import load_npz_dict, read_tsv, sentence_key, write_tsv
from hearlike.metrics import METRICS, compute_battery, compute_battery_reindexed
from hearlike.seeding import derive_seed
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


def metric_job(*, metric: str, model: str, aligned: Sequence[Path], features: Path, settings: Mapping[str, Any],
               nulls: Mapping[str, Any], per_electrode: bool, seed: int, out_values: Path,
               out_electrodes: Path) -> pd.DataFrame:
    """Step function: :func:`subject_metric` for every subject's aligned EEG; one table per (model, metric)."""
    feats, fmeta = load_npz_dict(features)
    values, electrodes = [], []
    for path in aligned:
        v, e = subject_metric(metric=metric, model=model, aligned=path, feats=feats, layers=fmeta["layers"],
                              settings=settings, nulls=nulls, per_electrode=per_electrode, seed=seed)
        values.append(v)
        electrodes.append(e)
    table = pd.concat(values, ignore_index=True)
    n_nan = int(table["value"].isna().sum())
    if n_nan:
        log.warning("%d of %d (subject, sentence, layer) values are NaN (degenerate input); excluded downstream",
                    n_nan, len(table))
    write_tsv(table, out_values)
    write_tsv(pd.concat(electrodes, ignore_index=True), out_electrodes)
    return table


def subject_metric(*, metric: str, model: str, aligned: Path, feats: Mapping[str, np.ndarray], layers: list[str],
                   settings: Mapping[str, Any], nulls: Mapping[str, Any], per_electrode: bool,
                   seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step function: ``metric`` for every (sentence, layer) of one subject and model, plus its nulls.

    Columns: observed value; ``null_mean``/``null_sd`` of the sentence-mismatch null (partners at least as
    long, cropped: an unbiased baseline at the sentence's own length), its p-value; the circular-shift
    null (mean, SD, p); and, for RSA-Spearman only, the paper's frame-permutation p-value
    (``p_frameperm_codefaithful``: anti-conservative, kept for comparison).

    The shift and frame-permutation draws of all layers of a timebase come from one
    :func:`~hearlike.metrics.compute_battery_reindexed` call per sentence (each side prepared once, each
    draw a gather and a dot product); the draws themselves are those of
    :func:`hearlike.nulls.sentence_null_table` with the per-layer unit seed, so the table is the same as
    scoring every re-indexed copy of the model features with ``compute_battery``.
    """
    eeg, emeta = load_npz_dict(aligned)
    subject = str(emeta["subject"])
    spec = METRICS[metric]
    settings = dict(settings)
    tables: list[pd.DataFrame] = []
    electrode_rows: list[dict[str, Any]] = []
    sids = [int(s) for s in emeta["sentence_ids"]]

    def battery(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return compute_battery(X, Y, metrics=[metric], settings={metric: settings})[metric]

    def batch_score(X: np.ndarray, Ys: np.ndarray) -> np.ndarray:
        return battery(X[None], Ys)[0]

    def layer_indexed_score(X: np.ndarray, Ys: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return compute_battery_reindexed(X, Ys, idx, metrics=[metric], settings={metric: settings})[metric]

    for timebase, group in group_layers(layers).items():
        pairs = {sid: sentence_pair(eeg, feats, timebase, group, sid) for sid in sids}
        pairs = {sid: p for sid, p in pairs.items() if len(p[0]) >= 3}
        if not pairs:
            log.warning("%s %s: no sentence has 3 valid frames on the %s timebase", model, subject, timebase)
            continue
        rate = float(np.median([1.0 / np.median(np.diff(t[:, 0])) for _, _, t in pairs.values() if len(t) > 1]))
        layer_tables = null_dist.layer_sentence_null_tables(
            eeg={sid: X for sid, (X, _, _) in pairs.items()},
            model={sid: Y for sid, (_, Y, _) in pairs.items()},
            seeds=[derive_seed(seed, "metric", model, metric, subject, layer) for layer in group],
            frame_rate_hz=rate, batch_score=batch_score, layer_indexed_score=layer_indexed_score,
            min_shift_s=nulls_cfg(nulls, "min_shift_s"), n_shifts=nulls_cfg(nulls, "circular_shift"),
            n_mismatch=nulls_cfg(nulls, "sentence_mismatch") or None,
            n_perm_codefaithful=nulls_cfg(nulls, "frame_permutation") if metric in FRAMEPERM_METRICS else 0,
        )
        for layer, table in zip(group, layer_tables, strict=True):
            table.insert(0, "subject", subject)
            table.insert(2, "model", model)
            table.insert(3, "layer", layer)
            table.insert(4, "metric", metric)
            table.insert(6, "n_frames", [len(pairs[sid][0]) for sid in table["sentence_id"]])
            tables.append(table)
        if per_electrode:
            # per electrode: each channel's frame series alone (|xi − xj| RDMs for RSA), sentences pooled
            per_el = np.stack([battery(X.T[:, :, None], Y) for X, Y, _ in pairs.values()
                               if X.shape[1] == len(emeta["ch_names"])])
            pooled = (inverse_fisher_z(np.nanmean(fisher_z(per_el), axis=0)) if spec.fisher_z
                      else np.nanmean(per_el, axis=0))
            for ci, ch in enumerate(emeta["ch_names"]):
                for li, layer in enumerate(group):
                    electrode_rows.append(dict(subject=subject, model=model, layer=layer, metric=metric, channel=ch,
                                               value=float(pooled[ci, li])))
    table = pd.concat(tables, ignore_index=True).sort_values(["layer", "sentence_id"], kind="stable")
    electrodes = pd.DataFrame(electrode_rows, columns=["subject", "model", "layer", "metric", "channel", "value"])
    return table, electrodes


def nulls_cfg(cfg: Mapping[str, Any], key: str) -> Any:
    """A null setting, with the error naming the config key when it is missing."""
    if key not in cfg:
        raise KeyError(f"config.yaml: nulls.{key} is required")
    return cfg[key]


WINDOW_METHODS = {"rsa_spearman": "spearman", "rsa_pearson": "pearson"}


def _window_table(table: pd.DataFrame, *, subject: str, model: str, metric: str, lock: str) -> pd.DataFrame:
    """Identify the rows of one windowed table: subject, model, layer, metric, lock first."""
    table = table.copy()
    table.insert(0, "subject", subject)
    table.insert(1, "model", model)
    table.insert(3, "metric", metric)
    table.insert(4, "lock", lock)
    return table


def window_job(*, model: str, subject: str, segments: Path, features: Path, words: Path, sentences: Path,
               windows: Mapping[str, Any], settings: Mapping[str, Any], seed: int, out: Path) -> pd.DataFrame:
    """Step function: time-windowed RSA of one subject and model, for every layer, window and electrode.

    ``lock: word`` (default): items are all words of the subject's sentences, the model vector of a word
    is the mean of its frames, the EEG vector the mean in [onset + start, onset + end) — so a window's
    latency is where the response to the word lives. ``lock: sentence``: the paper's windows from the
    sentence onset, the same window cut from EEG and model frames (no latency; NaN below 3 frames).
    Word-locked RSA uses at most ``windows["max_items"]`` words (a seeded subset per subject, model, timebase).
    """
    from hearlike import windows as win
    from hearlike.seeding import rng as seeded_rng

    seg, smeta = load_npz_dict(segments)
    feats, fmeta = load_npz_dict(features)
    sfreq = float(smeta["sfreq"])
    sids = [int(s) for s in smeta["sentence_ids"]]
    eeg = {sid: np.concatenate([seg[sentence_key(sid)], seg[sentence_key(sid) + ".post"]], axis=1) for sid in sids}
    wins = win.windows_from_config(erp=windows["erp"], sliding=windows["sliding"])
    words_rel = win.words_relative_to_sentences(read_tsv(words), read_tsv(sentences))
    frames: list[pd.DataFrame] = []
    for metric in windows["metrics"]:
        if metric not in WINDOW_METHODS:
            raise ValueError(f"config.yaml: windows.metrics lists {metric!r}; windowed analyses support "
                             f"{sorted(WINDOW_METHODS)}")
        if windows["lock"] == "word":
            # word-locked items span sentences, so they need the basis shared by all sentences; the layers of
            # one timebase share the items, so each window's EEG RDMs are ranked once for all of them
            by_timebase: dict[str, list[str]] = {}
            for layer in fmeta["layers"]:
                by_timebase.setdefault(layer.split(".", 1)[0], []).append(layer)
            for timebase, layers in by_timebase.items():
                times = {sid: feats[f"{timebase}/{sentence_key(sid)}.times"] for sid in sids}
                layer_feats = {layer: {sid: feats[f"{layer}/{sentence_key(sid)}.pooled"] for sid in sids}
                               for layer in layers}
                word_eeg, word_model, _ = win.word_locked_layer_features(
                    eeg=eeg, sfreq=sfreq, layers=layer_feats, frame_times=times, words=words_rel, windows=wins)
                table = win.window_rsa(eeg_features=word_eeg, model_features=word_model, windows=wins,
                                       channel_names=smeta["ch_names"], method=WINDOW_METHODS[metric],
                                       max_items=windows.get("max_items"),
                                       rng=seeded_rng(seed, "windows", subject, model, timebase, metric))
                frames.append(_window_table(table, subject=subject, model=model, metric=metric, lock="word"))
        else:
            for layer in fmeta["layers"]:
                timebase = layer.split(".", 1)[0]
                model_feats = {sid: feats[f"{layer}/{sentence_key(sid)}"] for sid in sids}
                times = {sid: feats[f"{timebase}/{sentence_key(sid)}.times"] for sid in sids}
                table = win.sentence_locked_subject_rsa(eeg={sid: seg[sentence_key(sid)] for sid in sids},
                                                        sfreq=sfreq, model=model_feats, frame_times=times,
                                                        windows=wins, channel_names=smeta["ch_names"],
                                                        method=WINDOW_METHODS[metric])
                table.insert(0, "layer", layer)
                frames.append(_window_table(table, subject=subject, model=model, metric=metric, lock="sentence"))
    result = pd.concat(frames, ignore_index=True)
    write_tsv(result, out)
    return result
