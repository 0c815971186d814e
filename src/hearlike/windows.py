"""Time-window RSA: ERP windows and sliding windows, sentence-onset-locked (paper) or word-onset-locked.

Two locks (METHODS §7):

* **sentence-locked** (the paper, ``analysis/time_window_analysis.py``): window [a, b) ms after the
  sentence onset is cut from both the EEG and the model frames (frames whose centre lies in the window);
  the EEG is interpolated per electrode onto those frame centres; conditions = the frames. The paper
  writes 0.0 for windows with fewer than 3 frames; here they are NaN (bug B22).
* **word-locked with latency** (our extension): conditions = the words of all sentences of a subject;
  model vector = the model frame at the word onset (the frame containing it); EEG vector = mean EEG in
  [onset + a, onset + b) per channel. Both sides are locked to the word onset, so window [a, b) measures
  the EEG response at latency a..b to the model state at word onset. (Averaging the model over the whole
  word, as before, shifted every latency by about half a word: a response 350 ms after the frames peaked
  in the sliding window centred at 475 ms.) The frame's centre lies within half a frame period of the
  onset and on average on it, so the reference carries no systematic shift.

RDMs: per electrode |x_i − x_j|; whole scalp (``channel = "all"``) correlation distance across channels;
model correlation distance across features. All electrodes of a window are scored at once: each RDM is
ranked once and Spearman is a matrix product.

Null (``null_mean``): the **EEG-side sentence mismatch**. Every subject hears the same stimuli, so the model
side stays fixed and only the EEG is exchanged: each sentence's EEG is replaced by that of a partner sentence
of the same subject with at least as many samples (:func:`draw_partners`), cropped from its onset to the
sentence's own length, and the items are cut from it at the sentence's own word (or frame) times. Word
timing, and with it the overlap of neighbouring words' windows that inflates RSA when EEG and model are
unrelated (≈ +0.02 whole-scalp with smooth EEG and model), is identical in value and null, so under H0 the
two are exchangeable given the stimuli and value − null is centred on 0. A sentence without a partner long
enough is left out of value and null alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from hearlike import nulls as null_dist
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
    null_items: Sequence[np.ndarray] = (),
    fisher_z: bool = True,
) -> list[dict[str, object]]:
    """Rows (one per layer × channel, then the whole scalp) of one window; the EEG RDMs are ranked once
    for all layers, which is where the time goes (C RDMs of n(n − 1)/2 pairs).

    ``null_items`` are the mismatch null's EEG items (same items and shape as ``eeg_items``), scored against
    the same model RDMs: ``null_mean`` is their mean (Fisher z and back for ``fisher_z``), ``n_null`` the
    number of finite draws.
    """
    n = eeg_items.shape[0]
    values = np.full((len(channel_names) + 1, len(model_items)), np.nan)
    nulls = np.full((len(null_items), *values.shape), np.nan)
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

        def score_items(x: np.ndarray) -> np.ndarray:
            per_channel = np.concatenate(
                [score(np.abs(x[iu, c : c + step] - x[ju, c : c + step]).T) for c in range(0, x.shape[1], step)]
            )
            return np.concatenate([per_channel, score(correlation_rdm(x)[None, :])])

        values = score_items(eeg_items)
        for d, x in enumerate(null_items):
            nulls[d] = score_items(x)
    null_mean, n_null = null_dist.null_mean(nulls, fisher_z=fisher_z)
    names = [*channel_names, ALL_CHANNELS]
    return [
        {
            "layer_index": li,
            "window": window.name,
            "start_ms": window.start_ms,
            "end_ms": window.end_ms,
            "channel": ch,
            "value": float(values[ci, li]),
            "null_mean": float(null_mean[ci, li]),
            "n_null": int(n_null[ci, li]),
            "n_items": n,
            "n_dropped": n_dropped,
        }
        for li in range(len(model_items))
        for ci, ch in enumerate(names)
    ]


def draw_partners(lengths: Mapping[int, int], *, rng: np.random.Generator) -> dict[int, int | None]:
    """One mismatch partner per sentence: another sentence with at least ``lengths[sid]`` samples.

    Sentences are visited in id order and each draws uniformly from its candidates
    (:func:`hearlike.nulls.draw_mismatch_partners`), so one generator gives one reproducible assignment.
    The longest sentence (and any sentence whose EEG no other one covers) gets ``None``.
    """
    from hearlike.nulls import draw_mismatch_partners

    out: dict[int, int | None] = {}
    for sid in sorted(lengths):
        pick = draw_mismatch_partners(n_frames=lengths, sentence_id=sid, n_partners=1, rng=rng)
        out[sid] = int(pick[0]) if pick.size else None
    return out


def partner_eeg(eeg: Mapping[int, np.ndarray], partners: Mapping[int, int | None]) -> dict[int, np.ndarray]:
    """Each sentence's EEG replaced by its partner's, cropped from the partner's onset to the sentence's own
    number of samples (so the same items fall inside the recording); sentences without a partner are left out."""
    out = {}
    for sid, p in partners.items():
        if p is None or sid not in eeg:
            continue
        own, other = np.asarray(eeg[sid]), np.asarray(eeg[p])
        if other.shape[1] < own.shape[1]:
            raise ValueError(f"partner {p} of sentence {sid} has {other.shape[1]} < {own.shape[1]} samples")
        out[sid] = other[:, : own.shape[1]]
    return out


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
    null_eeg: Sequence[np.ndarray] = (),
    fisher_z: bool = True,
) -> pd.DataFrame:
    """RSA per window for one sentence (paper lock): conditions = the model frames inside the window.

    Returns (window, start_ms, end_ms, channel, value, null_mean, n_null, n_items, n_dropped) with one row
    per electrode and one ``channel = "all"`` row (whole scalp). Fewer than ``min_items`` (≥ 3) frames →
    NaN. ``null_eeg``: the mismatch partners' EEG (C, ≥ Ns), cropped here to this sentence's Ns samples and
    read at the same frame centres; a frame must be finite in every one to be scored (value and null alike).
    """
    eeg = np.asarray(eeg, dtype=float)
    if eeg.shape[0] != len(channel_names):
        raise ValueError(f"EEG has {eeg.shape[0]} channels but {len(channel_names)} names")
    nulls = [np.asarray(x, dtype=float)[:, : eeg.shape[1]] for x in null_eeg]
    if any(x.shape != eeg.shape for x in nulls):
        raise ValueError(f"null EEG {[x.shape for x in nulls]} does not cover the sentence's {eeg.shape}")
    model = np.asarray(model, dtype=float)
    rows: list[dict[str, object]] = []
    for w in windows:
        mask = frames_in_window(frame_times, w)
        centres = np.asarray(frame_times, dtype=float)[mask].mean(axis=1)
        xs = [interpolate_eeg(x, sfreq, centres) for x in (eeg, *nulls)]
        keep = np.logical_and.reduce([np.all(np.isfinite(x), axis=1) for x in xs])
        rows.extend(
            _window_rows(w, xs[0][keep], [model[mask][keep]], channel_names, method=method, min_items=min_items,
                         n_dropped=int(mask.sum() - keep.sum()), null_items=[x[keep] for x in xs[1:]],
                         fisher_z=fisher_z)
        )  # fmt: skip
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
    partners: Sequence[Mapping[int, int | None]] = (),
) -> pd.DataFrame:
    """Sentence-locked window RSA of one subject, averaged over sentences per (window, channel).

    Sentences present on both sides are scored with :func:`sentence_locked_window_rsa`; NaN sentences
    (windows with < 3 frames) are skipped; correlations are averaged in Fisher-z space and
    back-transformed (``fisher_z=False`` for a plain mean). ``partners``: one mismatch assignment per null
    draw (:func:`draw_partners`); a sentence without a partner in some draw is left out of value and null
    alike (``n_no_partner``). Columns: window, start_ms, end_ms, channel, value, null_mean, n_sentences,
    n_no_partner.
    """
    cols = ["window", "start_ms", "end_ms", "channel", "value", "null_mean", "n_sentences", "n_no_partner"]
    scored = [sid for sid in sorted(eeg) if sid in model and sid in frame_times]
    crops = [partner_eeg(eeg, draw) for draw in partners]
    no_partner = [sid for sid in scored if any(sid not in c for c in crops)]
    parts = [
        sentence_locked_window_rsa(
            eeg=eeg[sid], sfreq=sfreq, model=model[sid], frame_times=frame_times[sid], windows=windows,
            channel_names=channel_names, method=method, min_items=min_items,
            null_eeg=[c[sid] for c in crops], fisher_z=fisher_z,
        )
        for sid in scored
        if sid not in no_partner
    ]  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=cols)
    df = pd.concat(parts, ignore_index=True)
    for col, tmp in (("value", "_v"), ("null_mean", "_n")):
        v = df[col].to_numpy(dtype=float)
        df[tmp] = to_z(v) if fisher_z else v
    out = (
        df.groupby(["window", "start_ms", "end_ms", "channel"], sort=False)
        .agg(value=("_v", "mean"), null_mean=("_n", "mean"), n_sentences=("_v", "count"))
        .reset_index()
    )
    if fisher_z:
        for col in ("value", "null_mean"):
            out[col] = inverse_fisher_z(out[col].to_numpy(dtype=float))
    out["n_no_partner"] = len(no_partner)
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


def word_model_features(*, model: np.ndarray, frame_times: np.ndarray, onsets_s: np.ndarray) -> np.ndarray:
    """(n_words, k): the model frame at each word onset; NaN row if no frame contains the onset.

    The frame at an onset is the one whose [start, end) contains it (of overlapping frames, the one whose
    centre is nearest). One frame, not the word's mean: the EEG windows are timed from the onset, and a
    mean over the word would move the model's reference half a word later.
    """
    ft = np.asarray(frame_times, dtype=float).reshape(-1, 2)
    m = np.asarray(model, dtype=float)
    on = np.asarray(onsets_s, dtype=float)
    out = np.full((on.size, m.shape[1] if m.ndim == 2 else 0), np.nan)
    if ft.shape[0] == 0 or on.size == 0:
        return out
    # the epsilon keeps an onset computed as 10.3 − 10.3 = −1e-16 in the sentence's first frame
    contains = (ft[None, :, 0] <= on[:, None] + 1e-9) & (on[:, None] < ft[None, :, 1])
    dist = np.where(contains, np.abs(ft.mean(axis=1)[None, :] - on[:, None]), np.inf)
    best = np.argmin(dist, axis=1)  # ties → the earlier frame
    found = np.isfinite(dist[np.arange(on.size), best])
    out[found] = m[best[found]]
    return out


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
    """Items = the words of all sentences of one subject that have EEG (see :func:`word_locked_layer_features`).

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
    are computed once, the model items per layer (n_items, k).

    The items are the words of the sentences with EEG, in sentence then table order: they depend on the
    subject only, never on the model, so that every model and timebase indexes the same word list (and a
    seeded subset of it means the same words). A word whose sentence a layer lacks, or whose onset no
    frame contains, gets a NaN model row (dropped later, for that model only).
    """
    eeg_parts: list[np.ndarray] = []
    model_parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    item_parts = []
    for sid, w in words.groupby("sentence_id", sort=True):
        sid = int(sid)
        if sid not in eeg:
            continue
        on = w["onset_s"].to_numpy(dtype=float)
        eeg_parts.append(word_eeg_features(eeg=eeg[sid], sfreq=sfreq, onsets_s=on, windows=windows))
        for name, model in layers.items():
            if sid in model and sid in frame_times:
                feats = word_model_features(model=model[sid], frame_times=frame_times[sid], onsets_s=on)
            else:
                feats = np.full((on.size, _n_features(model)), np.nan)
            model_parts[name].append(feats)
        item_parts.append(w)
    if not item_parts:
        raise ValueError("no word belongs to a sentence with EEG")
    return (
        np.concatenate(eeg_parts, axis=1),
        {name: np.concatenate(parts, axis=0) for name, parts in model_parts.items()},
        pd.concat(item_parts, ignore_index=True),
    )


def word_null_eeg(
    *,
    eeg: Mapping[int, np.ndarray],
    partners: Mapping[int, int | None],
    sfreq: float,
    words: pd.DataFrame,
    windows: Sequence[Window],
) -> np.ndarray:
    """(n_windows, n_items, C): the mismatch null's EEG items, aligned with :func:`word_locked_layer_features`.

    The same items (the words of the sentences with EEG, in the same order), each cut at its own onset from
    the EEG of its sentence's partner cropped to the sentence's own length (:func:`partner_eeg`), so the
    word timing is the sentence's own. NaN for the words of a sentence without a partner.
    """
    crops = partner_eeg(eeg, partners)
    n_ch = next(iter(eeg.values())).shape[0] if eeg else 0
    parts = []
    for sid, w in words.groupby("sentence_id", sort=True):
        sid = int(sid)
        if sid not in eeg:
            continue
        on = w["onset_s"].to_numpy(dtype=float)
        if sid in crops:
            parts.append(word_eeg_features(eeg=crops[sid], sfreq=sfreq, onsets_s=on, windows=windows))
        else:
            parts.append(np.full((len(windows), on.size, n_ch), np.nan))
    if not parts:
        raise ValueError("no word belongs to a sentence with EEG")
    return np.concatenate(parts, axis=1)


def _n_features(model: Mapping[int, np.ndarray]) -> int:
    """The feature count of a layer (from any of its sentences), for the NaN rows of a missing sentence."""
    for arr in model.values():
        return int(np.asarray(arr).shape[1])
    raise ValueError("a layer has no sentence")


def select_items(
    eeg_ok: np.ndarray, model_ok: np.ndarray, *, max_items: int | None, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """Per window, the sorted indices of the items scored: (n_windows, n_items) EEG validity → list.

    Without ``max_items`` (or with at most that many items) every item valid on both sides. Otherwise one
    seeded random order of all items (``rng.permutation(n_items)``), shared by the windows: each window
    takes the first ``max_items`` items of that order whose EEG is valid, then drops those without a model
    vector *without refilling*. The subset depends only on the item list, the EEG and the rng, never on the
    model, so models (and timebases) given the same items and rng are scored on the same words; a model
    that lacks a word scores one word fewer instead of a different one.
    """
    eeg_ok = np.atleast_2d(np.asarray(eeg_ok, dtype=bool))
    model_ok = np.asarray(model_ok, dtype=bool)
    n_items = eeg_ok.shape[1]
    order = None
    if max_items is not None and n_items > max_items:
        if rng is None:
            raise ValueError("max_items subsampling needs an rng")
        order = rng.permutation(n_items)
    out = []
    for ok in eeg_ok:
        idx = np.flatnonzero(ok)
        if order is not None and idx.size > max_items:
            idx = np.sort(order[ok[order]][:max_items])
        out.append(idx[model_ok[idx]])
    return out


def item_digest(idx: np.ndarray) -> str:
    """A short digest of item indices: equal digests in two tables mean the same items were scored."""
    return hashlib.sha1(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()[:12]


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
    null_eeg: Sequence[np.ndarray] = (),
    fisher_z: bool = True,
) -> pd.DataFrame:
    """Word-locked RSA per window and electrode.

    Columns: (layer,) window, start_ms, end_ms, channel, value, null_mean, n_null, n_items, n_dropped,
    item_set.
    ``model_features`` is one (n_items, k) array, or a mapping layer → array (then a first column
    ``layer``): the layers share the items, so each window's EEG RDMs are ranked once for all of them.
    Per window, items with NaN EEG (window past the EEG end) or NaN model features in any layer (no frame)
    cannot be scored; ``n_dropped`` counts them. ``max_items`` keeps a seeded random subset (see
    :func:`select_items`): the RDM has n(n − 1)/2 pairs per electrode, so thousands of words cost O(n²)
    memory and time. ``item_set`` is :func:`item_digest` of the scored item indices.

    ``null_eeg``: the mismatch null's EEG items, one array like ``eeg_features`` per draw
    (:func:`word_null_eeg`). They are scored on the very items of the value, against the same model
    vectors; an item must have finite EEG in every draw to be scored at all (value and null use the same
    words). ``null_mean`` is the mean over draws (Fisher z and back for ``fisher_z``), ``n_null`` the
    number of finite draws; without draws, NaN and 0.
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
    nulls = [np.asarray(x, dtype=float) for x in null_eeg]
    if any(x.shape != eeg_features.shape for x in nulls):
        raise ValueError(f"null EEG items {[x.shape for x in nulls]} do not match {eeg_features.shape}")
    model_ok = np.logical_and.reduce([np.all(np.isfinite(m), axis=1) for m in feats])
    # validity from the EEG (own and null) only, never the model: the subset stays one per subject
    eeg_ok = np.logical_and.reduce([np.all(np.isfinite(x), axis=2) for x in (eeg_features, *nulls)])
    chosen = select_items(eeg_ok, model_ok, max_items=max_items, rng=rng)
    rows: list[dict[str, object]] = []
    for wi, w in enumerate(windows):
        idx = chosen[wi]
        part = _window_rows(
            w,
            eeg_features[wi, idx],
            [m[idx] for m in feats],
            channel_names,
            method=method,
            min_items=min_items,
            n_dropped=n_items - int(np.sum(eeg_ok[wi] & model_ok)),
            null_items=[x[wi, idx] for x in nulls],
            fisher_z=fisher_z,
        )
        digest = item_digest(idx)
        rows.extend({**r, "item_set": digest} for r in part)
    table = pd.DataFrame(rows)
    names = list(layers)
    table.insert(0, "layer", [names[i] for i in table.pop("layer_index")])
    return table.drop(columns="layer") if single else table
