"""Time-window RSA: ERP windows and sliding windows, sentence-onset-locked (paper) or word-onset-locked.

Two locks (METHODS §7):

* **sentence-locked** (the paper, ``analysis/time_window_analysis.py``): window [a, b) ms after the
  sentence onset is cut from both the EEG and the model frames (frames whose centre lies in the window);
  the EEG is interpolated per electrode onto those frame centres; conditions = the frames. The paper
  writes 0.0 for windows with fewer than 3 frames; here they are NaN (bug B22).
* **word-locked with latency** (our extension): conditions = the words of all sentences of a subject;
  model vector = mean of the model frames overlapping the word; EEG vector = mean EEG in
  [onset + a, onset + b) per channel, so a window's latency is where the EEG response to the word lives.

RDMs: per electrode |x_i − x_j|; whole scalp (``channel = "all"``) correlation distance across channels;
model correlation distance across features. All electrodes of a window are scored at once: each RDM is
ranked once and Spearman is a matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from hearlike.stats import fisher_z as to_z
from hearlike.stats import inverse_fisher_z, standardized_ranks

#: rdm_score(eeg_rdms (R, N), model_rdm (N,)) -> (R,)
RdmScore = Callable[[np.ndarray, np.ndarray], np.ndarray]
Method = Literal["spearman", "pearson"] | RdmScore

ALL_CHANNELS = "all"


@dataclass(frozen=True)
class Window:
    """A latency window [start_ms, end_ms) with a file-safe name and a display label."""

    name: str
    start_ms: float
    end_ms: float
    label: str


#: ERP windows (ms). The paper's abstract calls 250–500 ms "N400" (its code's "P300" entry), while its
#: code/README put N400 at 300–500 ms: both are kept, the paper's one labelled explicitly.
ERP_WINDOWS: tuple[Window, ...] = (
    Window("N100", 80.0, 150.0, "N100"),
    Window("P200", 150.0, 250.0, "P200"),
    Window("N200", 200.0, 300.0, "N200"),
    Window("N400", 300.0, 500.0, "N400"),
    Window("w250_500_paper", 250.0, 500.0, "N400 (paper, 250–500)"),
    Window("P600", 500.0, 800.0, "P600"),
)


def erp_windows(names: Sequence[str] | None = None) -> list[Window]:
    """The ERP table, or the named subset in the given order."""
    if names is None:
        return list(ERP_WINDOWS)
    table = {w.name: w for w in ERP_WINDOWS}
    missing = [n for n in names if n not in table]
    if missing:
        raise KeyError(f"unknown ERP windows {missing}; known: {sorted(table)}")
    return [table[n] for n in names]


def sliding_windows(
    *, length_ms: float = 250.0, step_ms: float = 50.0, max_latency_ms: float = 1000.0, start_ms: float = 0.0
) -> list[Window]:
    """Windows [start + k·step, start + k·step + length) for every k with end ≤ ``max_latency_ms``."""
    if length_ms <= 0 or step_ms <= 0:
        raise ValueError("length_ms and step_ms must be positive")
    out = []
    k = 0
    while start_ms + k * step_ms + length_ms <= max_latency_ms + 1e-9:
        a = start_ms + k * step_ms
        b = a + length_ms
        out.append(Window(f"sl{round(a):04d}_{round(b):04d}", float(a), float(b), f"{a:g}–{b:g} ms"))
        k += 1
    return out


def windows_from_config(
    *, erp: Mapping[str, Sequence[float]] | None = None, sliding: Mapping[str, float] | None = None
) -> list[Window]:
    """Windows from the config: ``erp`` {name: [start_ms, end_ms]} then ``sliding`` {length_ms, step_ms, max_ms}.

    ERP names found in :data:`ERP_WINDOWS` keep its display label (e.g. the paper's 250–500 ms window).
    """
    labels = {w.name: w.label for w in ERP_WINDOWS}
    out = [
        Window(str(name), float(a), float(b), labels.get(str(name), f"{name} ({a:g}–{b:g} ms)"))
        for name, (a, b) in (erp or {}).items()
    ]
    if sliding:
        out += sliding_windows(
            length_ms=float(sliding.get("length_ms", 250.0)),
            step_ms=float(sliding.get("step_ms", 50.0)),
            max_latency_ms=float(sliding.get("max_ms", sliding.get("max_latency_ms", 1000.0))),
            start_ms=float(sliding.get("start_ms", 0.0)),
        )
    names = [w.name for w in out]
    if len(set(names)) != len(names):
        raise ValueError(f"window names must be unique: {names}")
    return out


def windows_table(windows: Sequence[Window]) -> pd.DataFrame:
    """The windows as a tidy table (window, start_ms, end_ms, label)."""
    return pd.DataFrame(
        {
            "window": [w.name for w in windows],
            "start_ms": [w.start_ms for w in windows],
            "end_ms": [w.end_ms for w in windows],
            "label": [w.label for w in windows],
        }
    )


# --------------------------------------------------------------------------------------------------
# RDMs and their scores


def abs_diff_rdms(x: np.ndarray) -> np.ndarray:
    """Per-channel RDMs |x_i − x_j| of (n_items, C) → (C, N) condensed (scipy ``pdist`` order)."""
    x = np.asarray(x, dtype=float)
    iu, ju = np.triu_indices(x.shape[0], k=1)
    return np.abs(x[iu].T - x[ju].T)


def correlation_rdm(x: np.ndarray) -> np.ndarray:
    """Correlation distance 1 − r between the rows of (n_items, f) → (N,); a constant row gives NaN."""
    x = np.asarray(x, dtype=float)
    xc = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.sum(xc**2, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        xn = xc / np.where(norm > 1e-12, norm, np.nan)[:, None]
    iu, ju = np.triu_indices(x.shape[0], k=1)
    return 1.0 - np.einsum("nf,nf->n", xn[iu], xn[ju])


def _standardize(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.sum(xc**2, axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-12, xc / norm, np.nan)


def rdm_scores(eeg_rdms: np.ndarray, model_rdm: np.ndarray, *, method: Method = "spearman") -> np.ndarray:
    """Score each row of ``eeg_rdms`` (R, N) against ``model_rdm`` (N,) → (R,), or (L, N) → (R, L).

    Spearman/Pearson: every RDM is ranked (standardised) once and all pairs are one matrix product; a
    callable is applied per model RDM. A constant or NaN-containing RDM gives NaN, never 0.
    """
    eeg_rdms = np.atleast_2d(np.asarray(eeg_rdms, dtype=float))
    model_rdm = np.asarray(model_rdm, dtype=float)
    if callable(method):
        if model_rdm.ndim == 1:
            return np.asarray(method(eeg_rdms, model_rdm), dtype=float)
        return np.stack([np.asarray(method(eeg_rdms, m), dtype=float) for m in model_rdm], axis=-1)
    return scaled_rdms(eeg_rdms, method=method) @ scaled_rdms(model_rdm, method=method).T


def scaled_rdms(rdms: np.ndarray, *, method: Literal["spearman", "pearson"]) -> np.ndarray:
    """RDMs (…, N) standardised so that a dot product is their Spearman (ranks) or Pearson correlation."""
    if method == "spearman":
        return standardized_ranks(rdms)
    if method == "pearson":
        return _standardize(rdms)
    raise ValueError(f"method must be 'spearman', 'pearson' or a callable, not {method!r}")


# --------------------------------------------------------------------------------------------------
# sentence-onset-locked windows (the paper's lock)


def frames_in_window(frame_times: np.ndarray, window: Window) -> np.ndarray:
    """Boolean mask of the frames whose centre lies in [start_ms, end_ms) after sentence onset."""
    ft = np.asarray(frame_times, dtype=float)
    centre_ms = 1000.0 * ft.mean(axis=1)
    return (centre_ms >= window.start_ms) & (centre_ms < window.end_ms)


def interpolate_eeg(eeg: np.ndarray, sfreq: float, times_s: np.ndarray) -> np.ndarray:
    """EEG (C, Ns) linearly interpolated at ``times_s`` (sample n at n/sfreq) → (len(times), C).

    Times outside [0, (Ns − 1)/sfreq] give NaN rather than a held edge value.
    """
    eeg = np.asarray(eeg, dtype=float)
    pos = np.asarray(times_s, dtype=float) * sfreq
    n = eeg.shape[1]
    inside = (pos >= 0) & (pos <= n - 1)
    p = np.clip(pos, 0, n - 1)
    lo = np.minimum(np.floor(p).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = p - lo
    out = eeg[:, lo] * (1.0 - w) + eeg[:, hi] * w
    out[:, ~inside] = np.nan
    return out.T


def sentence_window_features(
    *, eeg: np.ndarray, sfreq: float, model: np.ndarray, frame_times: np.ndarray, window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """The frames of one sentence-locked window: EEG at the frame centres (n, C) and model features (n, k).

    Frames whose centre lies beyond the sentence's EEG are left out.
    """
    mask = frames_in_window(frame_times, window)
    centres = np.asarray(frame_times, dtype=float)[mask].mean(axis=1)
    x = interpolate_eeg(eeg, sfreq, centres)
    keep = np.all(np.isfinite(x), axis=1)
    return x[keep], np.asarray(model, dtype=float)[mask][keep]


def _window_rows(
    window: Window,
    eeg_items: np.ndarray,
    model_items: Sequence[np.ndarray],
    channel_names: Sequence[str],
    *,
    method: Method,
    min_items: int,
    n_dropped: int,
    max_elements: float = 2e7,
) -> list[dict[str, object]]:
    """Rows (one per layer × channel, then the whole scalp) of one window; the EEG RDMs are ranked once
    for all layers, which is where the time goes (C RDMs of n(n − 1)/2 pairs)."""
    n = eeg_items.shape[0]
    values = np.full((len(channel_names) + 1, len(model_items)), np.nan)
    if n >= max(3, min_items):
        model_rdms = np.stack([correlation_rdm(m) for m in model_items])
        if not callable(method):
            model_rdms = scaled_rdms(model_rdms, method=method)
        iu, ju = np.triu_indices(n, k=1)

        def score(eeg_rdms: np.ndarray) -> np.ndarray:
            if callable(method):
                return rdm_scores(eeg_rdms, model_rdms, method=method)
            return scaled_rdms(eeg_rdms, method=method) @ model_rdms.T

        # electrodes in chunks: with thousands of words one RDM has millions of pairs
        step = max(1, int(max_elements // max(1, iu.size)))
        per_channel = np.concatenate(
            [
                score(np.abs(eeg_items[iu, c : c + step] - eeg_items[ju, c : c + step]).T)
                for c in range(0, eeg_items.shape[1], step)
            ]
        )
        scalp = score(correlation_rdm(eeg_items)[None, :])
        values = np.concatenate([per_channel, scalp])
    names = [*channel_names, ALL_CHANNELS]
    return [
        {
            "layer_index": li,
            "window": window.name,
            "start_ms": window.start_ms,
            "end_ms": window.end_ms,
            "channel": ch,
            "value": float(values[ci, li]),
            "n_items": n,
            "n_dropped": n_dropped,
        }
        for li in range(len(model_items))
        for ci, ch in enumerate(names)
    ]


def sentence_locked_window_rsa(
    *,
    eeg: np.ndarray,
    sfreq: float,
    model: np.ndarray,
    frame_times: np.ndarray,
    windows: Sequence[Window],
    channel_names: Sequence[str],
    method: Method = "spearman",
    min_items: int = 3,
) -> pd.DataFrame:
    """RSA per window for one sentence (paper lock): conditions = the model frames inside the window.

    Returns (window, start_ms, end_ms, channel, value, n_items, n_dropped) with one row per electrode and
    one ``channel = "all"`` row (whole scalp). Fewer than ``min_items`` (≥ 3) frames → NaN.
    """
    eeg = np.asarray(eeg, dtype=float)
    if eeg.shape[0] != len(channel_names):
        raise ValueError(f"EEG has {eeg.shape[0]} channels but {len(channel_names)} names")
    rows: list[dict[str, object]] = []
    for w in windows:
        x, y = sentence_window_features(eeg=eeg, sfreq=sfreq, model=model, frame_times=frame_times, window=w)
        n_dropped = int(frames_in_window(frame_times, w).sum()) - x.shape[0]
        rows.extend(
            _window_rows(w, x, [y], channel_names, method=method, min_items=min_items, n_dropped=n_dropped)
        )
    return pd.DataFrame(rows).drop(columns="layer_index")


def sentence_locked_subject_rsa(
    *,
    eeg: Mapping[int, np.ndarray],
    sfreq: float,
    model: Mapping[int, np.ndarray],
    frame_times: Mapping[int, np.ndarray],
    windows: Sequence[Window],
    channel_names: Sequence[str],
    method: Method = "spearman",
    min_items: int = 3,
    fisher_z: bool = True,
) -> pd.DataFrame:
    """Sentence-locked window RSA of one subject, averaged over sentences per (window, channel).

    Sentences present on both sides are scored with :func:`sentence_locked_window_rsa`; NaN sentences
    (windows with < 3 frames) are skipped; correlations are averaged in Fisher-z space and
    back-transformed (``fisher_z=False`` for a plain mean). Columns: window, start_ms, end_ms, channel,
    value, n_sentences.
    """
    parts = [
        sentence_locked_window_rsa(
            eeg=eeg[sid], sfreq=sfreq, model=model[sid], frame_times=frame_times[sid], windows=windows,
            channel_names=channel_names, method=method, min_items=min_items,
        )
        for sid in sorted(eeg)
        if sid in model and sid in frame_times
    ]  # fmt: skip
    cols = ["window", "start_ms", "end_ms", "channel", "value", "n_sentences"]
    if not parts:
        return pd.DataFrame(columns=cols)
    df = pd.concat(parts, ignore_index=True)
    df["_v"] = to_z(df["value"].to_numpy(dtype=float)) if fisher_z else df["value"].astype(float)
    out = (
        df.groupby(["window", "start_ms", "end_ms", "channel"], sort=False)
        .agg(value=("_v", "mean"), n_sentences=("_v", "count"))
        .reset_index()
    )
    if fisher_z:
        out["value"] = inverse_fisher_z(out["value"].to_numpy(dtype=float))
    return out[cols]


# --------------------------------------------------------------------------------------------------
# word-onset-locked windows with latency (our extension)


def words_relative_to_sentences(words: pd.DataFrame, sentences: pd.DataFrame) -> pd.DataFrame:
    """Word onsets/offsets re-expressed from the stimulus file's clock to seconds after sentence onset."""
    onset = sentences.set_index("sentence_id")["onset_s"]
    out = words.copy()
    shift = out["sentence_id"].map(onset)
    if shift.isna().any():
        missing = sorted(out.loc[shift.isna(), "sentence_id"].unique())
        raise KeyError(f"words of sentences {missing[:5]} have no row in the sentence table")
    out["onset_s"] = out["onset_s"] - shift
    out["offset_s"] = out["offset_s"] - shift
    return out


def word_model_features(
    *, model: np.ndarray, frame_times: np.ndarray, onsets_s: np.ndarray, offsets_s: np.ndarray
) -> np.ndarray:
    """(n_words, k): mean of the model frames overlapping [onset, offset); NaN row if none overlaps."""
    ft = np.asarray(frame_times, dtype=float)
    on = np.asarray(onsets_s, dtype=float)[:, None]
    off = np.asarray(offsets_s, dtype=float)[:, None]
    overlap = (ft[None, :, 0] < off) & (ft[None, :, 1] > on)  # (n_words, T)
    counts = overlap.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (overlap.astype(float) @ np.asarray(model, dtype=float)) / np.where(counts > 0, counts, np.nan)


def word_eeg_features(
    *, eeg: np.ndarray, sfreq: float, onsets_s: np.ndarray, windows: Sequence[Window]
) -> np.ndarray:
    """(n_windows, n_words, C): mean EEG over the samples in [onset + a, onset + b) per channel.

    Sample n sits at n/sfreq after sentence onset. A word whose window runs past the end of the EEG
    segment (or starts before it) gets NaN, i.e. is dropped from that window.
    """
    eeg = np.asarray(eeg, dtype=float)
    n = eeg.shape[1]
    cs = np.concatenate([np.zeros((eeg.shape[0], 1)), np.cumsum(eeg, axis=1)], axis=1)
    on = np.asarray(onsets_s, dtype=float)[None, :]
    a = np.array([w.start_ms for w in windows])[:, None] / 1000.0
    b = np.array([w.end_ms for w in windows])[:, None] / 1000.0
    # first sample at or after each bound; the tiny epsilon keeps exact sample times on the sample
    start = np.ceil((on + a) * sfreq - 1e-9).astype(np.int64)
    stop = np.ceil((on + b) * sfreq - 1e-9).astype(np.int64)
    valid = (start >= 0) & (stop <= n) & (stop > start)
    s0, s1 = np.clip(start, 0, n), np.clip(stop, 0, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cs[:, s1] - cs[:, s0]) / (s1 - s0)  # (C, W, n_words)
    mean[:, ~valid] = np.nan
    return np.moveaxis(mean, 0, -1)


@dataclass(frozen=True)
class WordFeatures:
    """Word-locked items of one subject: EEG (n_windows, n_items, C), model (n_items, k), item table."""

    eeg: np.ndarray
    model: np.ndarray
    items: pd.DataFrame
    windows: tuple[Window, ...]


def word_locked_features(
    *,
    eeg: Mapping[int, np.ndarray],
    sfreq: float,
    model: Mapping[int, np.ndarray],
    frame_times: Mapping[int, np.ndarray],
    words: pd.DataFrame,
    windows: Sequence[Window],
) -> WordFeatures:
    """Items = the words of all sentences of one subject (sentences missing on either side are skipped).

    ``eeg[sid]`` is the (C, Ns) segment starting at sentence onset, ``model[sid]`` (T, k) with
    ``frame_times[sid]`` (T, 2) in s after sentence onset, ``words`` has ``sentence_id``, ``onset_s``,
    ``offset_s`` in s after sentence onset (see :func:`words_relative_to_sentences`).
    """
    eeg_items, models, items = word_locked_layer_features(
        eeg=eeg, sfreq=sfreq, layers={"": model}, frame_times=frame_times, words=words, windows=windows
    )
    return WordFeatures(eeg=eeg_items, model=models[""], items=items, windows=tuple(windows))


def word_locked_layer_features(
    *,
    eeg: Mapping[int, np.ndarray],
    sfreq: float,
    layers: Mapping[str, Mapping[int, np.ndarray]],
    frame_times: Mapping[int, np.ndarray],
    words: pd.DataFrame,
    windows: Sequence[Window],
) -> tuple[np.ndarray, dict[str, np.ndarray], pd.DataFrame]:
    """:func:`word_locked_features` for several layers of one timebase: the EEG items (n_windows, n_items, C)
    are computed once, the model items per layer (n_items, k); items are the words of the sentences that
    the EEG and every layer have."""
    eeg_parts: list[np.ndarray] = []
    model_parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    item_parts = []
    for sid, w in words.groupby("sentence_id", sort=True):
        sid = int(sid)
        if sid not in eeg or any(sid not in model for model in layers.values()):
            continue
        on = w["onset_s"].to_numpy(dtype=float)
        off = w["offset_s"].to_numpy(dtype=float)
        eeg_parts.append(word_eeg_features(eeg=eeg[sid], sfreq=sfreq, onsets_s=on, windows=windows))
        for name, model in layers.items():
            model_parts[name].append(
                word_model_features(model=model[sid], frame_times=frame_times[sid], onsets_s=on, offsets_s=off)
            )
        item_parts.append(w)
    if not item_parts:
        raise ValueError("no sentence has both EEG and model features")
    return (
        np.concatenate(eeg_parts, axis=1),
        {name: np.concatenate(parts, axis=0) for name, parts in model_parts.items()},
        pd.concat(item_parts, ignore_index=True),
    )


def window_rsa(
    *,
    eeg_features: np.ndarray,
    model_features: np.ndarray | Mapping[str, np.ndarray],
    windows: Sequence[Window],
    channel_names: Sequence[str],
    method: Method = "spearman",
    min_items: int = 3,
    max_items: int | None = None,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Word-locked RSA per window and electrode: (window, start_ms, end_ms, channel, value, n_items, n_dropped).

    ``model_features`` is one (n_items, k) array, or a mapping layer → array (then a first column
    ``layer``): the layers share the items, so each window's EEG RDMs are ranked once for all of them.
    Per window, items with NaN EEG (window past the EEG end) or NaN model features in any layer (no frame)
    are dropped and counted in ``n_dropped``. ``max_items`` keeps a seeded random subset of the remaining
    items, from one random order shared by all windows (so they see nearly the same words): the RDM has
    n(n − 1)/2 pairs per electrode, so thousands of words cost O(n²) memory and time.
    """
    single = not isinstance(model_features, Mapping)
    layers = {"": model_features} if single else dict(model_features)
    feats = [np.asarray(m, dtype=float) for m in layers.values()]
    eeg_features = np.asarray(eeg_features, dtype=float)
    n_items = eeg_features.shape[1] if eeg_features.ndim == 3 else -1
    if eeg_features.shape[0] != len(windows) or any(m.shape[0] != n_items for m in feats):
        raise ValueError(
            f"EEG features {eeg_features.shape} do not match {len(windows)} windows × "
            f"{[m.shape[0] for m in feats]} items"
        )
    if eeg_features.shape[2] != len(channel_names):
        raise ValueError(f"EEG features have {eeg_features.shape[2]} channels but {len(channel_names)} names")
    model_ok = np.logical_and.reduce([np.all(np.isfinite(m), axis=1) for m in feats])
    order = None
    if max_items is not None and n_items > max_items:
        if rng is None:
            raise ValueError("max_items subsampling needs an rng")
        order = rng.permutation(n_items)
    rows: list[dict[str, object]] = []
    for wi, w in enumerate(windows):
        keep = model_ok & np.all(np.isfinite(eeg_features[wi]), axis=1)
        idx = np.flatnonzero(keep)
        n_dropped = n_items - idx.size
        if order is not None and idx.size > max_items:
            idx = np.sort(order[keep[order]][:max_items])
        rows.extend(
            _window_rows(
                w,
                eeg_features[wi, idx],
                [m[idx] for m in feats],
                channel_names,
                method=method,
                min_items=min_items,
                n_dropped=n_dropped,
            )
        )
    table = pd.DataFrame(rows)
    names = list(layers)
    table.insert(0, "layer", [names[i] for i in table.pop("layer_index")])
    return table.drop(columns="layer") if single else table
