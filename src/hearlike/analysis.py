"""Per-subject analysis jobs: one metric against every layer of one model (with nulls), and time windows."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hearlike import nulls as null_dist
from hearlike.align import aligned_key, group_layers, zscore_columns
from hearlike.io import load_npz_dict, read_tsv, sentence_key, write_tsv
from hearlike.metrics import METRICS, compute_battery, compute_battery_reindexed
from hearlike.seeding import rng as seeded_rng
from hearlike.stats import fisher_z, inverse_fisher_z

log = logging.getLogger(__name__)
#: the paper's frame-permutation null is computed only for the metric it was written for (code-faithful column)
FRAMEPERM_METRICS = ("rsa_spearman",)


#: fewest frames a metric is scored on (an RDM needs 3 entries)
MIN_SCORED_FRAMES = 3
#: columns of a metric table (``metrics/{model}/{metric}.tsv``), in order
METRIC_COLUMNS = ["subject", "sentence_id", "model", "layer", "metric", "lag_ms", "n_frames", "value", "null_mean",
                  "null_sd", "p_mismatch", "n_mismatch", "p_mismatch_min", "shift_null_mean", "shift_null_sd",
                  "p_shift", "p_frameperm_codefaithful", "reason"]


def eeg_side(x: np.ndarray, *, n_components: int | None = None) -> np.ndarray:
    """The EEG side of a metric from finite frames: constant channels dropped, channels z-scored over frames.

    ``n_components`` (gcmi) reduces the z-scored channels to their leading principal components (scores,
    z-scored), because the Gaussian-copula estimator needs more frames than dimensions.
    """
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
    x = zscore_columns(x[:, sd > 1e-12 * max(1.0, float(np.nanmax(np.abs(x), initial=0.0)))])
    if n_components is not None and x.shape[1] > n_components and len(x) > n_components:
        u, sv, _ = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
        x = zscore_columns(u[:, :n_components] * sv[:n_components])
    return x


def valid_frames(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, channels) masks of aligned EEG: channels with a finite value somewhere, then frames
    finite on all those channels.

    Frames go first (EEG past the recording, a frame partly outside), so one NaN frame drops that frame,
    not every channel; a channel that is NaN throughout is dropped instead of emptying every frame.
    """
    chans = np.isfinite(x).any(axis=0)
    frames = np.isfinite(x[:, chans]).all(axis=1) if chans.any() else np.zeros(len(x), bool)
    return frames, chans


def sentence_pair(aligned: Mapping[str, np.ndarray], feats: Mapping[str, np.ndarray], timebase: str,
                  layers: list[str], sid: int, lag_ms: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (T × C) z-scored EEG, Y (L × T × k) layer features, frame times) on the frames valid on both sides.

    Non-finite frames are dropped first, then channels non-finite or constant over what remains
    (:func:`valid_frames`, :func:`eeg_side`), so that they cannot bias a metric and one bad frame cannot
    drop every channel.
    """
    key = sentence_key(sid)
    raw = np.asarray(aligned[aligned_key(timebase, sid, lag_ms)], dtype=np.float64)
    Y = np.stack([feats[f"{layer}/{key}"].astype(np.float64) for layer in layers])
    times = feats[f"{timebase}/{key}.times"]
    frames, chans = valid_frames(raw)
    frames &= np.isfinite(Y).all(axis=(0, 2))
    return eeg_side(raw[frames][:, chans]), Y[:, frames], times[frames]


def metric_job(*, metric: str, model: str, aligned: Sequence[Path], features: Path, settings: Mapping[str, Any],
               nulls: Mapping[str, Any], per_electrode: bool, seed: int, out_values: Path,
               out_electrodes: Path, eeg_components: int | None = None) -> pd.DataFrame:
    """Step function: :func:`subject_metric` for every subject's aligned EEG; one table per (model, metric)."""
    feats, fmeta = load_npz_dict(features)
    values, electrodes = [], []
    for path in aligned:
        v, e = subject_metric(metric=metric, model=model, aligned=path, feats=feats, layers=fmeta["layers"],
                              settings=settings, nulls=nulls, per_electrode=per_electrode, seed=seed,
                              eeg_components=eeg_components, min_frames=fmeta.get("min_frames"))
        values.append(v)
        electrodes.append(e)
    table = pd.concat(values, ignore_index=True)
    n_nan = int(table["value"].isna().sum())
    if n_nan:
        reasons = table.loc[table["value"].isna(), "reason"].value_counts()
        log.warning("%d of %d (subject, sentence, layer, lag) values are NaN; excluded downstream. Reasons: %s",
                    n_nan, len(table), "; ".join(f"{r} ({n})" for r, n in reasons.items()))
    write_tsv(table, out_values)
    write_tsv(pd.concat(electrodes, ignore_index=True), out_electrodes)
    return table


def _score_items(battery: Any, xs: list[np.ndarray], Y: np.ndarray) -> np.ndarray:
    """(B, L) scores of each EEG item against every layer; items of equal shape share one batched call."""
    out = np.full((len(xs), Y.shape[0]), np.nan)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(xs):
        by_shape.setdefault(x.shape, []).append(i)
    for shape, items in by_shape.items():
        if shape[1] == 0:
            continue  # no usable channel: NaN
        out[items] = battery(np.stack([xs[i] for i in items]), Y)
    return out


def _null_summary(observed: float, null: np.ndarray, fisher: bool) -> tuple[float, float, float, int]:
    """Null mean (in Fisher-z space for correlation metrics, back-transformed), SD, one-sided p, draws."""
    null = np.asarray(null, dtype=float)
    fin = null[np.isfinite(null)]
    if fin.size == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(null_dist.null_mean(fin[:, None], fisher_z=fisher)[0][0])
    sd = float(fin.std(ddof=1)) if fin.size > 1 else np.nan
    return mean, sd, null_dist.p_value_greater(observed, fin), int(fin.size)


def subject_metric(*, metric: str, model: str, aligned: Path, feats: Mapping[str, np.ndarray], layers: list[str],
                   settings: Mapping[str, Any], nulls: Mapping[str, Any], per_electrode: bool,
                   seed: int, eeg_components: int | None = None,
                   min_frames: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Step function: ``metric`` for every (sentence, layer, lag) of one subject and model, plus its nulls.

    The primary null is the **EEG-side sentence mismatch**: the EEG of up to ``nulls["sentence_mismatch"]``
    other sentences of this subject with at least as many valid frames, cropped from their onset to this
    sentence's frames and prepared exactly like its own EEG (re-z-scored over the crop), is scored against
    this sentence's model features. Every subject hears the same stimuli, so the model side is held fixed
    and only the random side (the EEG) is exchanged: under H0 own and partner EEG are exchangeable given
    the stimuli, which makes ``null_mean`` an unbiased baseline for a test across subjects and ``p_mismatch``
    a valid per-sentence p (smallest attainable value in ``p_mismatch_min``). Partners are drawn per
    (subject, timebase, lag, sentence), shared by every layer and metric.

    Every lag of the aligned bundle is scored (value and mismatch null; ``nulls["lag_sweep_mismatch"]``
    partners at lags other than 0). At lag 0 only: the seam-free shift null (``nulls["circular_shift"]``
    mirrored-series draws, diagnostic) and, for RSA-Spearman, the paper's frame-permutation p
    (``p_frameperm_codefaithful``: anti-conservative, kept for comparison). Sentences that cannot be
    scored keep a row with NaN and the ``reason``.
    """
    eeg, emeta = load_npz_dict(aligned)
    subject = str(emeta["subject"])
    spec = METRICS[metric]
    settings = dict(settings)
    sids = [int(s) for s in emeta["sentence_ids"]]
    lags = [float(lag) for lag in emeta["lags_ms"]]
    rows: list[dict[str, Any]] = []
    electrode_rows: list[dict[str, Any]] = []

    def battery(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return compute_battery(X, Y, metrics=[metric], settings={metric: settings})[metric]

    def prepare(x: np.ndarray) -> np.ndarray:
        return eeg_side(x, n_components=eeg_components)

    for timebase, group in group_layers(layers).items():
        included = [sid for sid in sids if f"{group[0]}/{sentence_key(sid)}" in feats]
        for sid in sids:
            if sid not in included:
                rows.extend(_empty_rows(subject, model, metric, group, sid, lags,
                                        f"fewer than {min_frames} model frames on the "
                                        f"{timebase} timebase (excluded at the feature stage)"))
        Ys = {sid: np.stack([feats[f"{layer}/{sentence_key(sid)}"].astype(np.float64) for layer in group])
              for sid in included}
        rate = 1.0 / float(np.median(np.concatenate(
            [np.diff(feats[f"{timebase}/{sentence_key(s)}.times"][:, 0]) for s in included] or [np.ones(1)])))
        for lag in lags:
            raw, masks = {}, {}
            for sid in included:
                x = np.asarray(eeg[aligned_key(timebase, sid, lag)], dtype=np.float64)
                frames, chans = valid_frames(x)
                frames &= np.isfinite(Ys[sid]).all(axis=(0, 2))
                raw[sid], masks[sid] = x[:, chans], frames
            n_valid = {sid: int(masks[sid].sum()) for sid in included}
            n_partners = int(nulls["sentence_mismatch"] if lag == 0 else nulls["lag_sweep_mismatch"])
            for sid in included:
                n = n_valid[sid]
                if n < MIN_SCORED_FRAMES:
                    rows.extend(_empty_rows(subject, model, metric, group, sid, [lag],
                                            f"{n} frames with finite EEG at lag {lag:g} ms"))
                    continue
                partners = null_dist.draw_mismatch_partners(
                    n_frames=n_valid, sentence_id=sid, n_partners=n_partners,
                    rng=seeded_rng(seed, "mismatch", subject, model, timebase, lag, sid))
                own = prepare(raw[sid][masks[sid]])
                items = [own, *(prepare(raw[o][masks[o]][:n]) for o in partners)]
                Y = Ys[sid][:, masks[sid]]
                scores = _score_items(battery, items, Y)
                shift = np.full((len(group), 0), np.nan)
                perm = None
                if lag == 0 and nulls["circular_shift"] > 0:
                    idx = null_dist.draw_mirror_shifts(
                        n_frames=n, frame_rate_hz=rate, min_shift_s=nulls["min_shift_s"],
                        n_shifts=int(nulls["circular_shift"]), rng=seeded_rng(seed, "shift", subject, timebase, sid))
                    if len(idx):
                        shift = battery(own[None], Y[:, idx].reshape(-1, n, Y.shape[2])).reshape(len(group), -1)
                if lag == 0 and metric in FRAMEPERM_METRICS and nulls["frame_permutation"] > 0:
                    pidx = null_dist.draw_frame_permutations(
                        n_frames=n, n_perm=int(nulls["frame_permutation"]),
                        rng=seeded_rng(seed, "frameperm", subject, timebase, sid))
                    perm = compute_battery_reindexed(own, Y, np.repeat(pidx[None], len(group), axis=0),
                                                     metrics=[metric], settings={metric: settings})[metric]
                for li, layer in enumerate(group):
                    value = float(scores[0, li])
                    mean, sd, p, n_null = _null_summary(value, scores[1:, li], spec.fisher_z)
                    s_mean, s_sd, s_p, _ = _null_summary(value, shift[li], spec.fisher_z)
                    rows.append(dict(
                        subject=subject, sentence_id=sid, model=model, layer=layer, metric=metric, lag_ms=lag,
                        n_frames=n, value=value, null_mean=mean, null_sd=sd, p_mismatch=p, n_mismatch=n_null,
                        p_mismatch_min=1.0 / (n_null + 1) if n_null else np.nan, shift_null_mean=s_mean,
                        shift_null_sd=s_sd, p_shift=s_p,
                        p_frameperm_codefaithful=(null_dist.p_value_greater(value, perm[li]) if perm is not None
                                                  else np.nan),
                        reason=_nan_reason(value, metric, n, own.shape[1] + Y.shape[2])))
        if per_electrode:
            # per electrode at lag 0: each channel's frame series alone (|xi − xj| RDMs for RSA), sentences pooled
            per_el = []
            for sid in included:
                X, Y, _ = sentence_pair(eeg, feats, timebase, group, sid, 0.0)
                if X.shape[1] == len(emeta["ch_names"]) and len(X) >= MIN_SCORED_FRAMES:
                    per_el.append(battery(X.T[:, :, None], Y))
            if per_el:
                stacked = np.stack(per_el)
                pooled = (inverse_fisher_z(np.nanmean(fisher_z(stacked), axis=0)) if spec.fisher_z
                          else np.nanmean(stacked, axis=0))
                for ci, ch in enumerate(emeta["ch_names"]):
                    for li, layer in enumerate(group):
                        electrode_rows.append(dict(subject=subject, model=model, layer=layer, metric=metric,
                                                   channel=ch, value=float(pooled[ci, li])))
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS).sort_values(["layer", "lag_ms", "sentence_id"], kind="stable")
    electrodes = pd.DataFrame(electrode_rows, columns=["subject", "model", "layer", "metric", "channel", "value"])
    return table.reset_index(drop=True), electrodes


def _nan_reason(value: float, metric: str, n_frames: int, n_dims: int) -> str:
    """Why a scored value is NaN ('' when it is finite)."""
    if np.isfinite(value):
        return ""
    if metric == "gcmi" and n_frames <= n_dims + 1:
        return f"gcmi needs more frames than dimensions ({n_frames} frames, {n_dims} EEG + model dimensions)"
    return "degenerate input (constant or rank-deficient side)"


def _empty_rows(subject: str, model: str, metric: str, layers: list[str], sid: int, lags: list[float],
                reason: str) -> list[dict[str, Any]]:
    """NaN rows (with the reason) for a sentence that cannot be scored, so the table says why it is missing."""
    return [dict(subject=subject, sentence_id=sid, model=model, layer=layer, metric=metric, lag_ms=lag,
                 n_frames=0, n_mismatch=0, reason=reason) for layer in layers for lag in lags]


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

    ``lock: word`` (default): items are all words of the subject's sentences; the model vector of a word is
    the model frame at its onset, the EEG vector the mean in [onset + start, onset + end) — both locked to
    the word onset, so a window [start, end) measures the EEG response at that latency to the model state at
    word onset. ``lock: sentence``: the paper's windows from the sentence onset, the same window cut from EEG
    and model frames (no latency; NaN below 3 frames).

    Word-locked RSA uses at most ``windows["max_items"]`` words: one seeded subset per subject
    (``seed, "windows", subject``) drawn over the subject's word list, which does not depend on the model, so
    every model, timebase, layer and metric is scored on the same words (the ``item_set`` column shows it).
    A word that a model cannot represent (its sentence missing from the features, or no frame at its onset;
    frames tile each sentence, so neither happens with the pipeline's features) is dropped for that model
    without a substitute and counted in ``n_dropped``.

    Null (``null_mean``, both locks): the EEG-side sentence mismatch of :mod:`hearlike.windows`, with
    ``windows["null_draws"]`` partner assignments per subject (``seed, "window-null", subject, draw``): each
    sentence's EEG (segment + ``.post``; the segment alone for the sentence lock) is replaced by a partner's
    of at least that length, cropped to it, and cut at the sentence's own word (frame) times; the model side
    is unchanged. The partners depend on the subject only, so every model, timebase, layer and metric shares
    them. The words of a sentence without a partner (the longest) are dropped from value and null alike
    (they count in ``n_dropped`` too); ``n_no_partner`` counts them (sentences, for the sentence lock).
    """
    from hearlike import windows as win

    seg, smeta = load_npz_dict(segments)
    feats, fmeta = load_npz_dict(features)
    sfreq = float(smeta["sfreq"])
    sids = [int(s) for s in smeta["sentence_ids"]]
    eeg = {sid: np.concatenate([seg[sentence_key(sid)], seg[sentence_key(sid) + ".post"]], axis=1) for sid in sids}
    wins = win.windows_from_config(erp=windows["erp"], sliding=windows["sliding"])
    words_rel = win.words_relative_to_sentences(read_tsv(words), read_tsv(sentences))
    if "null_draws" not in windows:
        raise ValueError("config.yaml: windows.null_draws (mismatch-null draws per subject, e.g. 5) is missing")
    lengths = ({sid: eeg[sid].shape[1] for sid in sids} if windows["lock"] == "word"
               else {sid: seg[sentence_key(sid)].shape[1] for sid in sids})
    # one assignment per draw and subject, shared by every model, timebase, layer and metric
    partners = [win.draw_partners(lengths, rng=seeded_rng(seed, "window-null", subject, d))
                for d in range(int(windows["null_draws"]))]
    frames: list[pd.DataFrame] = []
    if windows["lock"] == "word":
        null_eeg = [win.word_null_eeg(eeg=eeg, partners=p, sfreq=sfreq, words=words_rel, windows=wins)
                    for p in partners]
        lonely = {sid for p in partners for sid, q in p.items() if q is None}
        n_no_partner = int(words_rel["sentence_id"].isin(lonely).sum())
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
                # a sentence the features lack leaves its words in the list (NaN model rows), so that the
                # word list, and the seeded subset drawn over it, stay the subject's own
                times = {sid: feats[f"{timebase}/{sentence_key(sid)}.times"] for sid in sids
                         if f"{timebase}/{sentence_key(sid)}.times" in feats}
                layer_feats = {layer: {sid: feats[f"{layer}/{sentence_key(sid)}.pooled"] for sid in sids
                                       if f"{layer}/{sentence_key(sid)}.pooled" in feats}
                               for layer in layers}
                word_eeg, word_model, _ = win.word_locked_layer_features(
                    eeg=eeg, sfreq=sfreq, layers=layer_feats, frame_times=times, words=words_rel, windows=wins)
                # a fresh generator per call: the same permutation of the same word list for every model,
                # timebase and metric of this subject
                table = win.window_rsa(eeg_features=word_eeg, model_features=word_model, windows=wins,
                                       channel_names=smeta["ch_names"], method=WINDOW_METHODS[metric],
                                       max_items=windows.get("max_items"),
                                       rng=seeded_rng(seed, "windows", subject), null_eeg=null_eeg,
                                       fisher_z=METRICS[metric].fisher_z)
                table["n_no_partner"] = n_no_partner
                frames.append(_window_table(table, subject=subject, model=model, metric=metric, lock="word"))
        else:
            for layer in fmeta["layers"]:
                timebase = layer.split(".", 1)[0]
                model_feats = {sid: feats[f"{layer}/{sentence_key(sid)}"] for sid in sids}
                times = {sid: feats[f"{timebase}/{sentence_key(sid)}.times"] for sid in sids}
                table = win.sentence_locked_subject_rsa(eeg={sid: seg[sentence_key(sid)] for sid in sids},
                                                        sfreq=sfreq, model=model_feats, frame_times=times,
                                                        windows=wins, channel_names=smeta["ch_names"],
                                                        method=WINDOW_METHODS[metric],
                                                        fisher_z=METRICS[metric].fisher_z, partners=partners)
                table.insert(0, "layer", layer)
                frames.append(_window_table(table, subject=subject, model=model, metric=metric, lock="sentence"))
    result = pd.concat(frames, ignore_index=True)
    write_tsv(result, out)
    return result
