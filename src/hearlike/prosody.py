"""Acoustic prosody per sentence and per 10 ms frame (METHODS §8.1, §8.2; fixes B24).

Two products:

* :func:`sentence_prosody` — one row per sentence: pitch level/range/variability from Praat's pitch tracker
  (praat-parselmouth), intensity, speaking rate, spectral centroid/flux/slope, and — when openSMILE imports —
  the 88 eGeMAPSv02 functionals under their own names (what the paper's affect proxies read, §8.2).
* :func:`frame_prosody` — a 100 Hz contour of the same quantities, each feature z-scored within the sentence
  (the paper concatenated unscaled Hz-valued columns into a correlation distance, B24), and
  :func:`resample_to_frames`, which averages the contour within arbitrary model frames ``[start, end)`` so that
  the prosody RDM has the same T as the model and EEG RDMs (§8.1 decision; the paper's 100 Hz vs model-rate
  mismatch is the other half of B24).

Fallback without openSMILE: if ``import opensmile`` (or building its extractor) fails, :func:`sentence_prosody`
warns once and returns the table without eGeMAPS columns; the affect rules then need
``hearlike.affect.FALLBACK_SCORE_COLUMNS``, which use this module's own columns as stand-ins.

Speaking rate: words per second from a word table when one is given (words over the span from the first word
onset to the last word offset); otherwise syllables per second from a syllable-nucleus count in the manner of
de Jong & Wempe (2009): peaks of the intensity contour that are at most 25 dB below the sentence's loudest frame,
stand out from the surrounding dips by ≥ 2 dB, and fall on a voiced pitch frame, divided by the clip duration.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import parselmouth
from scipy.signal import find_peaks

log = logging.getLogger(__name__)

FRAME_RATE_HZ = 100.0
FRAME_STEP_S = 1.0 / FRAME_RATE_HZ
SPECTRAL_WINDOW_S = 0.032  # as the paper's 512 samples at 16 kHz
SEMITONE_REFERENCE_HZ = 27.5  # eGeMAPS' F0semitoneFrom27.5Hz reference, so both scales line up
INTENSITY_DYNAMIC_RANGE_DB = 70.0  # Praat writes -300 dB for digital silence; that must not dominate a z-score
ACTIVE_FRAME_RANGE_DB = 30.0  # spectral means use frames within 30 dB of the loudest, not pause noise
MIN_VOICED_FRAMES = 3  # fewer voiced frames: pitch statistics are NaN
NUCLEUS_RANGE_DB = 25.0
NUCLEUS_PROMINENCE_DB = 2.0

#: Per-frame feature columns returned by :func:`frame_prosody`, in order.
FRAME_FEATURES: tuple[str, ...] = (
    "f0_st",
    "voiced",
    "intensity_db",
    "spectral_centroid_hz",
    "spectral_flux",
    "spectral_slope_db_per_khz",
)


def hz_to_semitones(f_hz: np.ndarray | float) -> np.ndarray:
    """Semitones above 27.5 Hz (eGeMAPS' reference)."""
    return 12.0 * np.log2(np.asarray(f_hz, dtype=np.float64) / SEMITONE_REFERENCE_HZ)


def frame_times(n_samples: int, sr: int) -> np.ndarray:
    """``(n_frames, 2)`` ``[start, end)`` seconds of the 100 Hz grid tiling ``[0, duration)``.

    The last frame is shortened to end at the clip's end, so the frames cover the clip exactly once.
    """
    duration = n_samples / float(sr)
    n_frames = int(np.ceil(duration * FRAME_RATE_HZ - 1e-9)) if n_samples > 0 else 0
    starts = np.arange(n_frames, dtype=np.float64) * FRAME_STEP_S
    ends = np.minimum(starts + FRAME_STEP_S, duration)
    return np.column_stack([starts, ends])


def _praat_tracks(
    signal: np.ndarray, sr: int, centres: np.ndarray, f0_floor: float, f0_ceiling: float
) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz, NaN where unvoiced) and intensity (dB) at the frame centres, from Praat's trackers."""
    sound = parselmouth.Sound(np.asarray(signal, dtype=np.float64), sampling_frequency=float(sr))
    f0 = np.full(centres.shape, np.nan)
    intensity = np.full(centres.shape, np.nan)
    try:
        pitch = sound.to_pitch(time_step=FRAME_STEP_S, pitch_floor=f0_floor, pitch_ceiling=f0_ceiling)
        xs = np.asarray(pitch.xs())
        values = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
        values[values <= 0] = np.nan
        # nearest pitch frame; centres beyond the analysed span stay unvoiced
        j = np.rint((centres - xs[0]) / pitch.time_step).astype(int)
        inside = (j >= 0) & (j < xs.size)
        f0[inside] = values[j[inside]]
    except parselmouth.PraatError as err:  # too short for the pitch window: no pitch is the honest answer
        log.debug("pitch analysis skipped: %s", err)
    try:
        track = sound.to_intensity(minimum_pitch=f0_floor, time_step=FRAME_STEP_S)
        values = np.asarray(track.values[0], dtype=np.float64)
        values = np.maximum(values, values.max() - INTENSITY_DYNAMIC_RANGE_DB)
        intensity = np.interp(centres, np.asarray(track.xs()), values)
    except parselmouth.PraatError as err:
        log.debug("intensity analysis skipped: %s", err)
    return f0, intensity


def _spectral_tracks(signal: np.ndarray, sr: int, centres: np.ndarray) -> dict[str, np.ndarray]:
    """Hann-windowed magnitude spectra around each centre → centroid, flux, slope and frame energy."""
    x = np.asarray(signal, dtype=np.float64)
    win = max(round(SPECTRAL_WINDOW_S * sr), 16)
    half = win // 2
    # left padding also covers the extra predecessor frame a step before the first centre
    pad = half + int(np.ceil(FRAME_STEP_S * sr)) + 1
    padded = np.pad(x, (pad, pad + win))
    # one extra frame a step before the first, so the first frame's flux has a predecessor
    c = np.concatenate([[centres[0] - FRAME_STEP_S], centres])
    first = np.rint(c * sr).astype(int) - half + pad
    idx = np.clip(first[:, None] + np.arange(win)[None, :], 0, padded.size - 1)
    frames = padded[idx] * np.hanning(win)[None, :]
    nfft = int(2 ** np.ceil(np.log2(win)))
    mag = np.abs(np.fft.rfft(frames, n=nfft, axis=1))
    freqs = np.fft.rfftfreq(nfft, d=1.0 / sr)
    total = mag.sum(axis=1)
    energy = (frames**2).sum(axis=1)
    silent = total <= 1e-10
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = (mag * freqs[None, :]).sum(axis=1) / total
        shape = mag / total[:, None]  # level-free shape, so flux is not just loudness change
        flux = np.sqrt((np.diff(shape, axis=0) ** 2).sum(axis=1))
        # least-squares slope of the dB spectrum against frequency in kHz
        db = 20.0 * np.log10(np.maximum(mag, 1e-10))
        fk = freqs / 1000.0
        fk_c = fk - fk.mean()
        slope = (db - db.mean(axis=1, keepdims=True)) @ fk_c / (fk_c @ fk_c)
    centroid[silent] = np.nan
    slope[silent] = np.nan
    flux[silent[1:] | silent[:-1]] = np.nan
    return {
        "spectral_centroid_hz": centroid[1:],
        "spectral_flux": flux,
        "spectral_slope_db_per_khz": slope[1:],
        "energy": energy[1:],
    }


def _raw_frames(signal: np.ndarray, sr: int, f0_floor: float, f0_ceiling: float) -> dict[str, np.ndarray]:
    """Unscaled per-frame tracks on the 100 Hz grid (F0 in Hz with NaN where unvoiced)."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    times = frame_times(x.size, sr)
    centres = times.mean(axis=1)
    if centres.size == 0:
        empty = np.zeros(0)
        return {"times": times.reshape(0, 2), "f0_hz": empty, "intensity_db": empty,
                "spectral_centroid_hz": empty, "spectral_flux": empty,
                "spectral_slope_db_per_khz": empty, "energy": empty}
    f0, intensity = _praat_tracks(x, sr, centres, f0_floor, f0_ceiling)
    return {"times": times, "f0_hz": f0, "intensity_db": intensity, **_spectral_tracks(x, sr, centres)}


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """Linear interpolation across NaN runs, edges held; all-NaN stays all-NaN."""
    out = np.asarray(values, dtype=np.float64).copy()
    ok = np.isfinite(out)
    if ok.all() or not ok.any():
        return out
    pos = np.arange(out.size)
    out[~ok] = np.interp(pos[~ok], pos[ok], out[ok])
    return out


def _zscore_columns(features: np.ndarray) -> np.ndarray:
    """z-score each column (population SD).

    A column that is constant or entirely missing becomes 0: it carries no information about which frames are
    alike, and 0 lets it drop out of every distance instead of turning the whole RDM into NaN.
    """
    out = np.zeros_like(features, dtype=np.float64)
    for j in range(features.shape[1]):
        col = features[:, j]
        if not np.isfinite(col).all():
            continue
        sd = col.std()
        if sd > 1e-12 * max(1.0, np.abs(col).max()):
            out[:, j] = (col - col.mean()) / sd
    return out


def frame_prosody(
    *,
    signal: np.ndarray,
    sr: int,
    f0_floor: float = 60.0,
    f0_ceiling: float = 400.0,
    zscore: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """100 Hz prosody contour of one sentence: ``(features (n_frames × 6), times (n_frames × 2))``.

    Columns are :data:`FRAME_FEATURES`: F0 in semitones (linearly interpolated through unvoiced stretches, so the
    contour is continuous; ``voiced`` marks where it was measured), Praat intensity (dB), spectral centroid (Hz),
    spectral flux (L2 change of the sum-normalised magnitude spectrum) and spectral slope (dB/kHz).
    With ``zscore`` each column is z-scored within the sentence (constant columns → 0, see
    :func:`_zscore_columns`). ``times`` are ``[start, end)`` seconds from the clip start.
    """
    raw = _raw_frames(signal, sr, f0_floor, f0_ceiling)
    voiced = np.isfinite(raw["f0_hz"]).astype(np.float64)
    f0_st = _fill_gaps(hz_to_semitones(raw["f0_hz"]))
    columns = [
        f0_st,
        voiced,
        _fill_gaps(raw["intensity_db"]),
        _fill_gaps(raw["spectral_centroid_hz"]),
        _fill_gaps(raw["spectral_flux"]),
        _fill_gaps(raw["spectral_slope_db_per_khz"]),
    ]
    features = np.column_stack(columns) if raw["times"].shape[0] else np.zeros((0, len(FRAME_FEATURES)))
    if zscore:
        features = _zscore_columns(features)
    return features, raw["times"]


def resample_to_frames(*, values: np.ndarray, times: np.ndarray, target_times: np.ndarray) -> np.ndarray:
    """Average a piecewise-constant frame series over each target interval ``[start, end)``.

    ``values`` (n × p) holds one value per source interval ``times`` (n × 2, sorted, non-overlapping). Each
    target row gets the time-weighted mean of the source values overlapping it (a source frame that half
    overlaps counts half). NaN source values count as uncovered; a target interval with no covered time is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    squeeze = values.ndim == 1
    if squeeze:
        values = values[:, None]
    times = np.asarray(times, dtype=np.float64)
    target = np.asarray(target_times, dtype=np.float64)
    if times.shape != (values.shape[0], 2) or target.ndim != 2 or target.shape[1] != 2:
        raise ValueError(f"times must be (n, 2) matching values and target_times (m, 2); got {times.shape}, "
                         f"{values.shape}, {target.shape}")
    if np.any(times[:, 1] < times[:, 0]) or np.any(times[1:, 0] < times[:-1, 1] - 1e-12):
        raise ValueError("source frames must be sorted and non-overlapping")
    out = np.full((target.shape[0], values.shape[1]), np.nan)
    if times.shape[0] == 0:
        return out[:, 0] if squeeze else out
    # cumulative integrals of value and of coverage are piecewise linear with knots at the frame edges
    knots = times.ravel()
    width = times[:, 1] - times[:, 0]
    for j in range(values.shape[1]):
        ok = np.isfinite(values[:, j])
        v = np.where(ok, values[:, j], 0.0)
        cum_v = np.concatenate([[0.0], np.cumsum(v * width)])
        cum_c = np.concatenate([[0.0], np.cumsum(ok * width)])
        at_knots_v = np.column_stack([cum_v[:-1], cum_v[1:]]).ravel()
        at_knots_c = np.column_stack([cum_c[:-1], cum_c[1:]]).ravel()
        iv = np.interp(target, knots, at_knots_v)
        ic = np.interp(target, knots, at_knots_c)
        covered = ic[:, 1] - ic[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = np.where(covered > 1e-12, (iv[:, 1] - iv[:, 0]) / covered, np.nan)
    return out[:, 0] if squeeze else out


def syllable_nuclei(
    *, intensity_db: np.ndarray, f0_hz: np.ndarray, range_db: float = NUCLEUS_RANGE_DB,
    prominence_db: float = NUCLEUS_PROMINENCE_DB,
) -> np.ndarray:
    """Indices of intensity peaks counted as syllable nuclei (see the module docstring for the rule)."""
    intensity = np.asarray(intensity_db, dtype=np.float64)
    if intensity.size < 3 or not np.isfinite(intensity).any():
        return np.zeros(0, dtype=int)
    filled = _fill_gaps(intensity)
    peaks, _ = find_peaks(filled, height=np.nanmax(filled) - range_db, prominence=prominence_db)
    return peaks[np.isfinite(np.asarray(f0_hz)[peaks])]


def _pitch_statistics(f0_hz: np.ndarray) -> dict[str, float]:
    voiced = f0_hz[np.isfinite(f0_hz)]
    stats = dict.fromkeys(
        ("pitch_level_hz", "pitch_level_st", "f0_mean_st", "f0_sd_st", "f0_cv_st", "pitch_range_st"), np.nan
    )
    stats["voiced_fraction"] = float(voiced.size / f0_hz.size) if f0_hz.size else np.nan
    if voiced.size < MIN_VOICED_FRAMES:
        return stats
    st = hz_to_semitones(voiced)
    p5, p95 = np.percentile(st, [5.0, 95.0])
    stats.update(
        pitch_level_hz=float(np.median(voiced)),
        pitch_level_st=float(np.median(st)),
        f0_mean_st=float(st.mean()),
        f0_sd_st=float(st.std(ddof=1)),
        f0_cv_st=float(st.std(ddof=1) / st.mean()),  # what eGeMAPS calls stddevNorm
        pitch_range_st=float(p95 - p5),
    )
    return stats


def _sentence_row(
    signal: np.ndarray, sr: int, f0_floor: float, f0_ceiling: float
) -> dict[str, float]:
    raw = _raw_frames(signal, sr, f0_floor, f0_ceiling)
    duration = np.asarray(signal).size / float(sr)
    row: dict[str, float] = {"duration_s": duration}
    row.update(_pitch_statistics(raw["f0_hz"]))
    intensity = raw["intensity_db"]
    if np.isfinite(intensity).any():
        # energy average: pauses do not drag the level of the speech down
        row["intensity_mean_db"] = float(10.0 * np.log10(np.nanmean(10.0 ** (intensity / 10.0))))
        row["intensity_sd_db"] = float(np.nanstd(intensity, ddof=1)) if np.isfinite(intensity).sum() > 1 else np.nan
        n_nuclei = syllable_nuclei(intensity_db=intensity, f0_hz=raw["f0_hz"]).size
        row["syllables_per_s"] = n_nuclei / duration if duration > 0 else np.nan
    else:
        row.update(intensity_mean_db=np.nan, intensity_sd_db=np.nan, syllables_per_s=np.nan)
    energy = raw["energy"]
    active = energy >= energy.max() * 10.0 ** (-ACTIVE_FRAME_RANGE_DB / 10.0) if energy.size else energy > 0
    active &= energy > 0
    for name in ("spectral_centroid_hz", "spectral_flux", "spectral_slope_db_per_khz"):
        vals = raw[name][active]
        vals = vals[np.isfinite(vals)]
        row[name] = float(vals.mean()) if vals.size else np.nan
    return row


def _words_per_second(words: pd.DataFrame) -> pd.Series:
    """Words over the span first onset → last offset, per sentence_id (NaN for a non-positive span)."""
    missing = {"sentence_id", "onset_s", "offset_s"} - set(words.columns)
    if missing:
        raise KeyError(f"word table lacks column(s) {sorted(missing)}")
    grouped = words.groupby("sentence_id")
    span = grouped["offset_s"].max() - grouped["onset_s"].min()
    n = grouped.size()
    rate = n / span.where(span > 0)
    return rate.astype(np.float64)


def _make_smile() -> Any | None:
    """The eGeMAPSv02 functionals extractor, or None (with a warning) if openSMILE is unusable here."""
    try:
        import opensmile

        return opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
        )
    except (ImportError, OSError, RuntimeError) as err:
        warnings.warn(
            f"openSMILE unavailable ({err!r}); eGeMAPS columns are left out. Use "
            "hearlike.affect.FALLBACK_SCORE_COLUMNS for the affect scores.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def sentence_prosody(
    *,
    audio: Mapping[int, np.ndarray],
    sr: int,
    words: pd.DataFrame | None = None,
    f0_floor: float = 60.0,
    f0_ceiling: float = 400.0,
    egemaps: bool = True,
) -> pd.DataFrame:
    """One row per sentence (sorted by ``sentence_id``) of sentence-level acoustic prosody.

    Columns: ``sentence_id duration_s`` · pitch: ``pitch_level_hz pitch_level_st`` (median F0),
    ``f0_mean_st f0_sd_st f0_cv_st pitch_range_st`` (5th–95th percentile, semitones) ``voiced_fraction`` ·
    ``intensity_mean_db intensity_sd_db`` · rate: ``syllables_per_s``, ``words_per_s`` (NaN without a word
    table), ``speaking_rate`` (= words_per_s when ``words`` is given, else syllables_per_s; one unit per table,
    named in ``speaking_rate_unit``) · ``spectral_centroid_hz spectral_flux spectral_slope_db_per_khz``
    (means over frames within 30 dB of the loudest) · with ``egemaps`` the 88 eGeMAPSv02 functionals.
    """
    if f0_floor <= 0 or f0_ceiling <= f0_floor:
        raise ValueError(f"need 0 < f0_floor < f0_ceiling, got {f0_floor}, {f0_ceiling}")
    smile = _make_smile() if egemaps else None
    rows = []
    for sid in sorted(audio):
        signal = np.asarray(audio[sid], dtype=np.float64).ravel()
        row: dict[str, Any] = {"sentence_id": int(sid)}
        row.update(_sentence_row(signal, sr, f0_floor, f0_ceiling))
        if smile is not None:
            try:
                functionals = smile.process_signal(signal.astype(np.float32), sr)
                row.update({k: float(v) for k, v in functionals.iloc[0].items()})
            except Exception as err:  # openSMILE rejects some clips (too short); that sentence gets NaN
                log.warning("sentence %s: eGeMAPS failed (%s); NaN functionals", sid, err)
                row.update(dict.fromkeys(smile.feature_names, np.nan))
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=["sentence_id"])
    if words is not None:
        wps = _words_per_second(words)
        table["words_per_s"] = table["sentence_id"].map(wps).astype(np.float64)
        table["speaking_rate"] = table["words_per_s"]
        table["speaking_rate_unit"] = "words_per_s"
    else:
        table["words_per_s"] = np.nan
        table["speaking_rate"] = table.get("syllables_per_s", np.nan)
        table["speaking_rate_unit"] = "syllables_per_s"
    own = [c for c in table.columns if c not in (smile.feature_names if smile is not None else [])]
    ordered = own + [c for c in table.columns if c not in own]
    return table[ordered].reset_index(drop=True)
