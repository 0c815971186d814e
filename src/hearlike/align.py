"""Timestamp-based alignment of sentence EEG to each model's own frames (METHODS §4.1 decision).

Model frame k of a sentence covers ``[start_k, end_k)`` seconds from the sentence onset at the model's
true rate (50, 25, 12.5, 10 or 6.25 Hz). Its EEG value is the mean of the EEG samples inside
``[start_k + lag, end_k + lag)`` — a boxcar anti-alias filter matched to the frame — instead of the paper
code's count-based linear interpolation that never checks durations (B10, B11).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hearlike.io import load_npz_dict, save_npz_dict, sentence_key


def frame_means(eeg: np.ndarray, sfreq: float, frame_times: np.ndarray, *, lag_s: float = 0.0,
                post: np.ndarray | None = None) -> np.ndarray:
    """(T × C) mean of ``eeg`` (C × Ns, sample 0 = sentence onset) within each frame ``[start, end) + lag``.

    Frames that contain no sample (frames shorter than the sampling period) take the sample nearest to
    their centre; frames past the available EEG are NaN (reported downstream, never zero).
    """
    data = eeg if post is None or post.size == 0 else np.concatenate([eeg, post], axis=1)
    n = data.shape[1]
    # non-finite samples are counted apart: one NaN sample makes its own frames NaN, not every later frame
    # (a running sum would carry it forward)
    bad = ~np.isfinite(data)
    zeros = np.zeros((data.shape[0], 1))
    csum = np.concatenate([zeros, np.cumsum(np.where(bad, 0.0, data), axis=1, dtype=np.float64)], axis=1)
    cbad = np.concatenate([zeros, np.cumsum(bad, axis=1, dtype=np.float64)], axis=1)
    start = np.ceil((frame_times[:, 0] + lag_s) * sfreq - 1e-9).astype(int)
    stop = np.ceil((frame_times[:, 1] + lag_s) * sfreq - 1e-9).astype(int)
    out = np.full((len(frame_times), data.shape[0]), np.nan)
    for k, (a, b) in enumerate(zip(start, stop, strict=True)):
        a, b = max(a, 0), min(b, n)
        if b > a:
            out[k] = np.where(cbad[:, b] > cbad[:, a], np.nan, (csum[:, b] - csum[:, a]) / (b - a))
        else:
            c = round((frame_times[k].mean() + lag_s) * sfreq)
            if 0 <= c < n:
                out[k] = data[:, c]
    return out


def aligned_key(timebase: str, sid: int, lag_ms: float) -> str:
    """Key of one sentence's aligned EEG at one lag in an ``aligned/{model}/sub-*.npz`` bundle."""
    return f"{timebase}/lag{round(lag_ms):+d}/{sentence_key(sid)}"


def align_subject(*, segments: Path, features: Path, out: Path, lags_ms: list[float]) -> None:
    """Step function: aligned EEG for every (timebase, sentence, lag) of one model and one subject.

    Each lag of the sweep (``alignment.lags_ms``; lag 0 is the paper's) gets its own frame means, read by
    the metric job for the held-out lag choice (METHODS §4.1).
    """
    eeg, meta = load_npz_dict(segments)
    feats, fmeta = load_npz_dict(features)
    sfreq = float(meta["sfreq"])
    lags = sorted({float(lag) for lag in lags_ms} | {0.0})
    aligned: dict[str, np.ndarray] = {}
    for timebase in fmeta["timebases"]:
        for sid in meta["sentence_ids"]:
            key = sentence_key(sid)
            times = feats[f"{timebase}/{key}.times"]
            for lag in lags:
                aligned[aligned_key(timebase, sid, lag)] = frame_means(
                    eeg[key], sfreq, times, lag_s=lag / 1e3, post=eeg.get(key + ".post")).astype(np.float32)
    save_npz_dict(out, aligned, meta={"ch_names": meta["ch_names"], "subject": meta["subject"],
                                      "sentence_ids": meta["sentence_ids"], "timebases": fmeta["timebases"],
                                      "lags_ms": lags})


def zscore_columns(x: np.ndarray) -> np.ndarray:
    """Z-score each column over rows; constant columns become NaN (degenerate, reported downstream)."""
    sd = x.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x - x.mean(axis=0)) / np.where(sd > 0, sd, np.nan)


def timebase_of(layer: str) -> str:
    """Layers of one group (``encoder``/``llm``) share frame times."""
    return layer.split(".", 1)[0]


def group_layers(layers: list[str]) -> Mapping[str, list[str]]:
    """Timebase → its layers, in order."""
    groups: dict[str, list[str]] = {}
    for name in layers:
        groups.setdefault(timebase_of(name), []).append(name)
    return groups
