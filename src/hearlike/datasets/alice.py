"""Brennan & Hale (2019) "Alice" EEG as the BIDS dataset NEMAR nm000180 1.1.3.

Layout facts (docs: ../shared/DATASETS.md §2): one BrainVision recording per subject (task
``alicelistening``, 500 Hz, 60 scalp channels ``1…28, 30…61`` on an easycap-M10 cap + ``VEOG`` + the audio
copy ``Aux5``), word events in ``events.tsv`` (EEG seconds), the word table
``sourcedata/AliceChapterOne-EEG.csv`` (onsets relative to each of the 12 segment wavs, 84 sentences,
2129 words), subject selection ``sourcedata/datasets.mat`` (``use``), stimuli
``stimuli/DownTheRabbitHoleFinal_SoundFile{1..12}.wav``. Mains is 60 Hz (USA).

Segment onsets: segment start in EEG time = onset(first word of the segment in events.tsv) − the CSV onset
of that word. For 8 subjects the events are labelled one segment too early (the first trigger was
missed; DATASETS.md §2.6). Two independent checks find such subjects:

* metadata: the intervals between label onsets are matched against the intervals of complete subjects
  (``REFERENCE_INTERVALS_S``); a subject whose first interval is missing is shifted by one;
* audio: each segment wav's envelope is cross-correlated with the envelope of the ``Aux5`` channel,
  giving the segment's true onset, which is compared with the label onsets.

``shift_policy="relabel"`` relabels segment := label + shift (the label onsets are then the true onsets of
those segments); ``"exclude"`` drops the subject. Either way the decision and its reason are in
``segment_decisions()`` and in the log.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hearlike.datasets.base import (
    STIM_ONSET_COLUMNS,
    WORD_COLUMNS,
    DatasetError,
    Recording,
    check_columns,
    subject_labels,
)
from hearlike.datasets.download import check_brainvision_recording, require_content
from hearlike.io import write_tsv

if TYPE_CHECKING:
    import mne
    from mne_bids import BIDSPath

log = logging.getLogger(__name__)

TASK = "alicelistening"
N_SEGMENTS = 12
SCALP_CHANNELS = tuple(str(k) for k in range(1, 62) if k != 29)  # 29 was the online reference
AUDIO_CHANNEL = "Aux5"
EOG_CHANNEL = "VEOG"
#: intervals between the 12 segment triggers, median over the 30 twelve-segment subjects of nm000180 1.1.3
#: (recomputed from their events.tsv; spread between subjects <= 0.07 s)
REFERENCE_INTERVALS_S = (
    57.618,
    60.913,
    63.312,
    70.043,
    66.328,
    63.829,
    62.961,
    57.380,
    57.276,
    61.313,
    56.227,
)
CSV_COLUMNS = ("Word", "Segment", "onset", "offset", "Order", "Sentence")
EVENT_COLUMNS = ("onset", "word", "word_index", "segment")
DECISION_COLUMNS = (
    "subject",
    "n_labels",
    "interval_shift",
    "interval_residual_s",
    "audio_shift",
    "audio_n_matched",
    "audio_max_dev_s",
    "shift",
    "action",
    "reason",
)
SHIFT_POLICIES = ("relabel", "exclude")
_EXPECTED_WARNINGS = (
    r".*participants\.tsv.*",
    r".*[Uu]nable to map.*",
    r".*[Ff]iducial.*",
    r".*not in the montage.*",
    r".*[Nn]o (electrode )?locations.*",
)
_WORD_TOLERANCE_S = 0.005  # events vs CSV offsets agree to 0.6 ms; 1-sample trl rounding is 2 ms


def stim_file_for_segment(segment: int) -> str:
    """``DownTheRabbitHoleFinal_SoundFile{k}.wav``."""
    return f"DownTheRabbitHoleFinal_SoundFile{int(segment)}.wav"


_STIM_RE = re.compile(r"DownTheRabbitHoleFinal_SoundFile(\d{1,2})\.wav")


# ------------------------------------------------------------------------------------------------
# metadata readers


def read_word_csv(path: str | Path) -> pd.DataFrame:
    """Read and check ``AliceChapterOne-EEG.csv`` (CRLF, no final newline)."""
    path = Path(path)
    require_content(path, what="word table", fix="download nm000180 (its sourcedata/ is plain git).")
    csv = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    check_columns(csv, CSV_COLUMNS, source=path)
    csv["Word"] = csv["Word"].astype(str)
    for col in ("Segment", "Order", "Sentence"):
        if csv[col].isna().any() or (csv[col] % 1 != 0).any():
            raise DatasetError(f"{path}: column {col} must hold whole numbers in every row.")
        csv[col] = csv[col].astype(int)
    if not csv["Segment"].between(1, N_SEGMENTS).all():
        raise DatasetError(f"{path}: Segment outside 1…{N_SEGMENTS}.")
    if csv["Order"].duplicated().any() or not csv["Order"].is_monotonic_increasing:
        raise DatasetError(f"{path}: Order must be unique and increasing (story order).")
    if (csv["offset"] < csv["onset"]).any() or csv[["onset", "offset"]].isna().any().any():
        raise DatasetError(f"{path}: every word needs onset <= offset.")
    if (csv["Sentence"] <= 0).any():
        raise DatasetError(f"{path}: Sentence ids must be positive.")
    return csv


def read_use_list(path: str | Path) -> list[str]:
    """Subject labels (``001``…) flagged ``use`` in ``datasets.mat`` (``S01.mat`` → ``001``)."""
    from pymatreader import read_mat

    path = Path(path)
    require_content(
        path, what="subject index datasets.mat", fix="download nm000180 (sourcedata/ is plain git)."
    )
    try:
        mat = read_mat(str(path))
    except Exception as exc:  # pymatreader raises several types for unreadable files
        raise DatasetError(f"{path}: not a readable MAT file ({exc}); download it again.") from exc
    if "use" not in mat:
        raise DatasetError(
            f"{path}: no variable 'use' (found {sorted(k for k in mat if not k.startswith('__'))})."
        )
    labels = []
    for entry in np.atleast_1d(mat["use"]):
        m = re.fullmatch(r"S(\d+)(\.mat)?", str(entry).strip())
        if not m:
            raise DatasetError(f"{path}: unexpected entry {entry!r} in 'use' (expected names like S01.mat).")
        labels.append(f"{int(m.group(1)):03d}")
    return labels


def read_events(path: str | Path) -> pd.DataFrame:
    """The word events of one subject (``trial_type == word``)."""
    path = Path(path)
    require_content(path, what="word events", fix="download nm000180 again (events.tsv are plain git).")
    ev = pd.read_csv(path, sep="\t", encoding="utf-8-sig", keep_default_na=False, na_values=["n/a"])
    check_columns(ev, EVENT_COLUMNS, source=path)
    if "trial_type" in ev.columns:
        ev = ev[ev["trial_type"] == "word"]
    if ev.empty:
        raise DatasetError(f"{path}: no word events.")
    if ev[["onset", "word_index", "segment"]].isna().any().any():
        raise DatasetError(f"{path}: onset, word_index and segment must be filled in for every word.")
    ev = ev.astype({"word_index": int, "segment": int})
    ev["word"] = ev["word"].astype(str)
    return ev.reset_index(drop=True)


def label_onsets(events: pd.DataFrame, csv: pd.DataFrame, *, source: str | Path) -> pd.DataFrame:
    """Where each labelled segment starts in EEG time: ``segment eeg_onset_s n_words spread_s``.

    Segment start = onset(first word of the label in events.tsv) − CSV onset of that word. Raises when an
    event's word or segment disagrees with the CSV, or when the offset is not constant within a label.
    """
    m = events.merge(
        csv[["Order", "Word", "Segment", "onset"]],
        left_on="word_index",
        right_on="Order",
        how="left",
        suffixes=("", "_csv"),
    )
    if m["Order"].isna().any():
        bad = m.loc[m["Order"].isna(), "word_index"].iloc[0]
        raise DatasetError(
            f"{source}: word_index {bad} is not an Order of the word CSV; wrong CSV or events file."
        )
    wrong_word = m["word"] != m["Word"]
    if wrong_word.any():
        r = m[wrong_word].iloc[0]
        raise DatasetError(
            f"{source}: word_index {r.word_index} is {r.word!r} here but {r.Word!r} in the CSV."
        )
    if (m["segment"] != m["Segment"]).any():
        r = m[m["segment"] != m["Segment"]].iloc[0]
        raise DatasetError(
            f"{source}: word_index {r.word_index} is in segment {r.segment} here but {r.Segment} in the CSV."
        )
    m["offset_s"] = m["onset"] - m["onset_csv"]
    rows = []
    for seg, grp in m.sort_values("word_index").groupby("segment", sort=True):
        start = float(grp["offset_s"].iloc[0])
        spread = float((grp["offset_s"] - start).abs().max())
        if spread > _WORD_TOLERANCE_S:
            raise DatasetError(
                f"{source}: within segment {seg} the word onsets drift {spread * 1e3:.1f} ms against the CSV; "
                "the events were not built from this CSV."
            )
        rows.append((int(seg), start, len(grp), spread))
    return pd.DataFrame(rows, columns=["segment", "eeg_onset_s", "n_words", "spread_s"])


# ------------------------------------------------------------------------------------------------
# shift detection


def interval_shift(
    onsets: Mapping[int, float],
    *,
    reference_intervals_s: Sequence[float] = REFERENCE_INTERVALS_S,
    tol_s: float = 0.25,
) -> tuple[int | None, float]:
    """The segment shift d that makes label k's onset pattern match segment k + d; (None, nan) if none fits.

    Compares every label onset minus the reference onset of segment ``label + d`` (which must be constant)
    for each d that keeps all labels within the segments; returns (d, largest deviation).
    """
    ref = np.concatenate([[0.0], np.cumsum(reference_intervals_s)])
    n_seg = len(ref)
    labels = np.array(sorted(onsets), dtype=int)
    values = np.array([onsets[k] for k in labels], dtype=float)
    if len(labels) < 2:
        return None, float("nan")  # one onset carries no interval pattern
    fits = []
    for d in range(1 - labels.min(), n_seg - labels.max() + 1):
        resid = values - ref[labels + d - 1]
        dev = float(np.max(np.abs(resid - np.median(resid))))
        if dev <= tol_s:
            fits.append((dev, d))
    if len(fits) != 1:
        return None, float("nan") if not fits else min(fits)[0]
    dev, d = fits[0]
    return d, dev


def audio_envelope(
    x: np.ndarray, sfreq: float, *, band_sfreq: float, rate_hz: float = 100.0, highpass_hz: float = 20.0
) -> np.ndarray:
    """Amplitude envelope at ``rate_hz`` after bringing the audio to ``band_sfreq``.

    The stimulus wavs go through the EEG amplifier's rate before the envelope is taken, so both signals
    of a cross-correlation keep the same frequency band; the high-pass removes electrode drift.
    """
    from scipy.signal import butter, resample_poly, sosfiltfilt

    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        x = x.mean(axis=1)  # wav frames × channels
    if round(sfreq) != round(band_sfreq):
        frac = Fraction(band_sfreq / sfreq).limit_denominator(10_000)
        x = resample_poly(x, frac.numerator, frac.denominator)
    if highpass_hz and highpass_hz < band_sfreq / 2:
        x = sosfiltfilt(butter(4, highpass_hz, btype="highpass", fs=band_sfreq, output="sos"), x)
    frac = Fraction(rate_hz / band_sfreq).limit_denominator(10_000)
    return resample_poly(np.abs(x), frac.numerator, frac.denominator)


def normalized_xcorr(signal: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``template`` with every full-overlap window of ``signal`` (NaN where flat)."""
    from scipy.signal import fftconvolve

    signal = np.asarray(signal, dtype=float)
    template = np.asarray(template, dtype=float)
    m = len(template)
    if m < 2 or len(signal) < m:
        return np.full(max(len(signal) - m + 1, 0), np.nan)
    t = template - template.mean()
    t_norm = np.sqrt(np.sum(t * t))
    num = fftconvolve(signal, t[::-1], mode="valid")
    c1 = np.concatenate([[0.0], np.cumsum(signal)])
    c2 = np.concatenate([[0.0], np.cumsum(signal * signal)])
    s1 = c1[m:] - c1[:-m]
    ss = (c2[m:] - c2[:-m]) - s1 * s1 / m
    den = np.sqrt(np.clip(ss, 0.0, None)) * t_norm
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[den <= 1e-12 * max(float(den.max(initial=0.0)), 1e-300)] = np.nan
    return r


def find_segment_onsets(
    aux: np.ndarray,
    aux_sfreq: float,
    wavs: Mapping[int, tuple[np.ndarray, float]],
    *,
    rate_hz: float = 100.0,
    min_corr: float = 0.3,
    min_margin: float = 0.15,
) -> pd.DataFrame:
    """True onset of each segment wav inside the audio channel: ``segment eeg_onset_s peak_corr second_corr``.

    ``eeg_onset_s`` is NaN unless the best correlation reaches ``min_corr`` and beats the best one more
    than 1 s away by ``min_margin`` (a segment not recorded whole still has some best lag).
    """
    env = audio_envelope(aux, aux_sfreq, band_sfreq=aux_sfreq, rate_hz=rate_hz)
    guard = round(rate_hz)  # 1 s
    rows = []
    for seg in sorted(wavs):
        data, sr = wavs[seg]
        tmpl = audio_envelope(data, sr, band_sfreq=aux_sfreq, rate_hz=rate_hz)
        r = normalized_xcorr(env, tmpl)
        if r.size == 0 or np.all(np.isnan(r)):
            rows.append((seg, np.nan, np.nan, np.nan))
            continue
        k = int(np.nanargmax(r))
        peak = float(r[k])
        rest = np.concatenate([r[: max(k - guard, 0)], r[k + guard + 1 :]])
        second = float(np.nanmax(rest)) if np.isfinite(rest).any() else np.nan
        delta = 0.0
        if 0 < k < len(r) - 1 and np.isfinite(r[k - 1]) and np.isfinite(r[k + 1]):
            denom = r[k - 1] - 2 * r[k] + r[k + 1]
            if denom < 0:
                delta = float(0.5 * (r[k - 1] - r[k + 1]) / denom)  # parabolic peak refinement
        distinct = not np.isfinite(second) or peak - second >= min_margin
        onset = (k + delta) / rate_hz if peak >= min_corr and distinct else np.nan
        rows.append((seg, onset, peak, second))
    return pd.DataFrame(rows, columns=["segment", "eeg_onset_s", "peak_corr", "second_corr"])


def audio_shift(
    labels: pd.DataFrame, audio: pd.DataFrame, *, tol_s: float = 0.25
) -> tuple[int | None, int, float]:
    """Shift that maps labels to the segments the audio channel shows at their onsets.

    Returns (shift or None, labels matched, largest |audio onset − label onset| among matches). The shift
    is None unless at least half of the labels match one segment each and all matches agree.
    """
    found = audio.dropna(subset=["eeg_onset_s"])
    shifts, devs = [], []
    for seg, onset in labels[["segment", "eeg_onset_s"]].itertuples(index=False):
        near = found[(found["eeg_onset_s"] - onset).abs() <= tol_s]
        if len(near) == 1:
            shifts.append(int(near["segment"].iloc[0]) - int(seg))
            devs.append(abs(float(near["eeg_onset_s"].iloc[0]) - onset))
    n = len(shifts)
    max_dev = max(devs) if devs else float("nan")
    if n == 0 or 2 * n < len(labels) or len(set(shifts)) != 1:
        return None, n, max_dev
    return shifts[0], n, max_dev


# ------------------------------------------------------------------------------------------------
# adapter


class AliceDataset:
    """The DatasetAdapter of the Alice EEG (nm000180; see module docstring).

    ``task``, ``montage`` and ``line_freq`` come from config.yaml's dataset block; task and montage must
    be the dataset's own (``alicelistening``, ``easycap-M10``), ``line_freq`` defaults to 60 Hz.
    ``subjects``: a list of labels, or ``"all"``/None for the ``use`` subjects that nm000180 holds.
    ``shift_policy``/``audio_check``/``decisions_file``: how shifted subjects are found and handled.
    """

    name = "alice"
    non_scalp_channels: tuple[str, ...] = (EOG_CHANNEL, AUDIO_CHANNEL)

    def __init__(
        self,
        *,
        bids_root: str | Path,
        subjects: Sequence[str] | str | None = None,
        task: str = TASK,
        montage: str = "easycap-M10",
        line_freq: float = 60.0,
        shift_policy: str = "relabel",
        audio_check: bool = False,
        decisions_file: str | Path | None = None,
        csv_path: str | Path | None = None,
        datasets_mat: str | Path | None = None,
        stimuli_dir: str | Path | None = None,
        reference_intervals_s: Sequence[float] = REFERENCE_INTERVALS_S,
        interval_tol_s: float = 0.25,
        audio_tol_s: float = 0.25,
        audio_min_corr: float = 0.3,
        audio_min_margin: float = 0.15,
        envelope_rate_hz: float = 100.0,
    ) -> None:
        self.bids_root = Path(bids_root)
        if not (self.bids_root / "dataset_description.json").exists():
            raise DatasetError(
                f"{self.bids_root / 'dataset_description.json'}: not found; {self.bids_root} is not the nm000180 "
                "BIDS root (python -m hearlike.datasets.download alice --dest DIR)."
            )
        if task != TASK or montage != "easycap-M10":
            raise DatasetError(
                f"config.yaml datasets.alice: task {task!r} / montage {montage!r} must be {TASK!r} / 'easycap-M10' "
                "(the scalp channels are easycap-M10 positions 1…61 without 29)."
            )
        self.task = task
        self.montage = montage
        self.line_freq = float(line_freq)
        if shift_policy not in SHIFT_POLICIES:
            raise DatasetError(f"shift_policy {shift_policy!r}: choose one of {SHIFT_POLICIES}")
        self._subjects = subject_labels(subjects)
        self.shift_policy = shift_policy
        self.audio_check = bool(audio_check)
        self.decisions_file = Path(decisions_file) if decisions_file is not None else None
        self.csv_path = (
            Path(csv_path) if csv_path else self.bids_root / "sourcedata" / "AliceChapterOne-EEG.csv"
        )
        self.datasets_mat = (
            Path(datasets_mat) if datasets_mat else self.bids_root / "sourcedata" / "datasets.mat"
        )
        self.stimuli_dir = Path(stimuli_dir) if stimuli_dir else self.bids_root / "stimuli"
        self.reference_intervals_s = tuple(float(x) for x in reference_intervals_s)
        self.interval_tol_s = float(interval_tol_s)
        self.audio_tol_s = float(audio_tol_s)
        self.audio_min_corr = float(audio_min_corr)
        self.audio_min_margin = float(audio_min_margin)
        self.envelope_rate_hz = float(envelope_rate_hz)
        self._audio_cache: dict[str, pd.DataFrame] = {}
        self._decision_cache: dict[str, dict[str, object]] = {}

    # ---- subjects ----------------------------------------------------------------------------

    def participants(self) -> list[str]:
        """Subject labels in ``participants.tsv`` (the 45 converted subjects)."""
        path = self.bids_root / "participants.tsv"
        require_content(path, what="participants table", fix="download nm000180 again.")
        table = pd.read_csv(path, sep="\t", dtype=str, encoding="utf-8-sig", keep_default_na=False)
        check_columns(table, ("participant_id",), source=path)
        return [p.removeprefix("sub-") for p in table["participant_id"]]

    def candidate_subjects(self) -> list[str]:
        """``use`` subjects of datasets.mat that nm000180 converted (31), or the configured list; all on disk."""
        listed = self.participants()
        if self._subjects is not None:
            chosen, source = self._subjects, "the configured subject list"
        else:
            use = read_use_list(self.datasets_mat)
            not_converted = [s for s in use if s not in listed]
            if not_converted:
                log.info("use subjects not in nm000180 (never converted): %s", ", ".join(not_converted))
            chosen, source = [s for s in use if s in listed], str(self.bids_root / "participants.tsv")
        absent = [s for s in chosen if not (self.bids_root / f"sub-{s}").is_dir()]
        if absent:
            raise DatasetError(
                f"{source}: subject(s) {['sub-' + s for s in absent]} listed but absent from {self.bids_root}; "
                "download them (datalad get) or configure the subjects that are present."
            )
        return list(chosen)

    def subjects(self) -> list[str]:
        """Candidate subjects minus those the segment check excludes."""
        return [s for s in self.candidate_subjects() if self.decision(s)["action"] != "exclude"]

    def recordings(self, subject: str) -> list[Recording]:
        """One continuous recording per subject."""
        return [Recording(subject=subject, task=TASK)]

    # ---- files -------------------------------------------------------------------------------

    def _stem(self, subject: str) -> Path:
        return self.bids_root / f"sub-{subject}" / "eeg" / f"sub-{subject}_task-{TASK}"

    def events_path(self, subject: str) -> Path:
        """``sub-XXX/eeg/sub-XXX_task-alicelistening_events.tsv``."""
        return Path(f"{self._stem(subject)}_events.tsv")

    def bids_path(self, recording: Recording) -> BIDSPath:
        """The ``mne_bids.BIDSPath`` of the recording's ``.vhdr``."""
        from mne_bids import BIDSPath

        return BIDSPath(
            root=self.bids_root,
            subject=recording.subject,
            task=TASK,
            datatype="eeg",
            suffix="eeg",
            extension=".vhdr",
        )

    def dataset_bads(self, recording: Recording) -> list[str]:
        """Channels marked ``bad`` in ``_channels.tsv`` (none in nm000180 1.1.3)."""
        path = Path(f"{self._stem(recording.subject)}_channels.tsv")
        require_content(path, what="channels sidecar", fix="download nm000180 again.")
        table = pd.read_csv(path, sep="\t", dtype=str, encoding="utf-8-sig", keep_default_na=False)
        check_columns(table, ("name", "status"), source=path)
        return table.loc[table["status"].str.strip().str.lower() == "bad", "name"].tolist()

    def _load_raw(self, recording: Recording) -> mne.io.BaseRaw:
        import mne
        from mne_bids import read_raw_bids

        stem = self._stem(recording.subject)
        vhdr = Path(f"{stem}_eeg.vhdr")
        header = check_brainvision_recording(
            vhdr=vhdr, sidecar=Path(f"{stem}_eeg.json"), channels_tsv=Path(f"{stem}_channels.tsv")
        )
        missing = [c for c in (*SCALP_CHANNELS, EOG_CHANNEL) if c not in header.channel_names]
        if missing:
            raise DatasetError(
                f"{vhdr}: channel(s) {missing} missing; expected 1…28, 30…61, VEOG (and Aux5)."
            )
        montage_names = set(mne.channels.make_standard_montage(self.montage).ch_names)
        off_cap = [c for c in SCALP_CHANNELS if c not in montage_names]
        if off_cap:  # pragma: no cover - guards against an MNE montage change
            raise DatasetError(f"MNE montage {self.montage}: lacks channels {off_cap}")
        with warnings.catch_warnings():
            for pattern in _EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            raw = read_raw_bids(self.bids_path(recording), verbose="error")
        raw.info["line_freq"] = self.line_freq
        return raw

    def read_raw(
        self, recording: Recording, *, preload: bool = False, check_span: bool = True
    ) -> mne.io.BaseRaw:
        """Read the recording with ``read_raw_bids`` after integrity checks; easycap-M10 montage, 60 Hz mains.

        With ``check_span`` the recording must contain every placed segment up to its last word.
        Note: the annotations are nm000180's word events as labelled in the file (wrong for shifted
        subjects); take word times from ``word_table`` + ``stim_onsets`` instead.
        """
        raw = self._load_raw(recording)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*not (present|found) in the montage.*")
            raw.set_montage(self.montage, on_missing="ignore")
        if check_span:
            have = raw.n_times / raw.info["sfreq"]
            ends = self._word_csv.groupby("Segment")["offset"].max()
            for row in self.stim_onsets(recording).itertuples(index=False):
                seg = int(_STIM_RE.fullmatch(row.stim_file).group(1))
                need = row.eeg_onset_s + float(ends[seg])
                if need > have + 1.0 / raw.info["sfreq"]:
                    raise DatasetError(
                        f"{self.bids_path(recording).fpath}: recording lasts {have:.3f} s but segment {seg} "
                        f"(onset {row.eeg_onset_s:.3f} s) needs {need:.3f} s; the EEG is truncated — download it again."
                    )
        if preload:
            raw.load_data()
        return raw

    # ---- words and sentences -----------------------------------------------------------------

    @cached_property
    def _word_csv(self) -> pd.DataFrame:
        return read_word_csv(self.csv_path)

    def word_table(self) -> pd.DataFrame:
        """Columns ``WORD_COLUMNS`` from the CSV: 2129 words, 84 sentence ids, times relative to each segment wav.

        ``word_index`` is the story ``Order``. Six CSV sentences run across a segment boundary; a sentence
        must lie in one wav (its EEG span and audio clip must have equal length), so each keeps the part in
        the segment holding most of its words and the other part's words get ``sentence_id`` <NA>
        (``cross_segment_words`` lists them).
        """
        csv = self._word_csv
        sentence = pd.array(csv["Sentence"].to_numpy(), dtype="Int64")
        sentence[self._cross_segment_mask.to_numpy()] = pd.NA
        return pd.DataFrame(
            {
                "stim_file": csv["Segment"].map(stim_file_for_segment).to_numpy(),
                "word_index": csv["Order"].to_numpy(),
                "word": csv["Word"].to_numpy(),
                "onset_s": csv["onset"].to_numpy(dtype=float),
                "offset_s": csv["offset"].to_numpy(dtype=float),
                "sentence_id": sentence,
            }
        )[list(WORD_COLUMNS)]

    @cached_property
    def _cross_segment_mask(self) -> pd.Series:
        csv = self._word_csv
        counts = csv.groupby(["Sentence", "Segment"], sort=True).size().reset_index(name="n")
        # most words wins; on a tie the earlier segment (rows are sorted by Sentence, Segment)
        keep = counts.loc[counts.groupby("Sentence")["n"].idxmax(), ["Sentence", "Segment"]]
        kept = pd.MultiIndex.from_frame(keep)
        return pd.Series(~pd.MultiIndex.from_frame(csv[["Sentence", "Segment"]]).isin(kept), index=csv.index)

    def cross_segment_words(self) -> pd.DataFrame:
        """The words left without a sentence because their sentence continues in another segment."""
        csv = self._word_csv
        return csv.loc[self._cross_segment_mask, ["Order", "Word", "Segment", "Sentence"]].reset_index(
            drop=True
        )

    def stimulus_path(self, stim_file: str) -> Path:
        """``stimuli/DownTheRabbitHoleFinal_SoundFileK.wav``; raises when unknown or missing."""
        m = _STIM_RE.fullmatch(stim_file)
        if not m or not 1 <= int(m.group(1)) <= N_SEGMENTS:
            raise DatasetError(
                f"{stim_file!r} is not an Alice stimulus name (DownTheRabbitHoleFinal_SoundFile1…12.wav)."
            )
        path = self.stimuli_dir / stim_file
        require_content(
            path, what="stimulus audio", fix="python -m hearlike.datasets.download alice --dest DIR"
        )
        return path

    def check_stimuli(self) -> pd.DataFrame:
        """Each segment wav must last at least until its last word's offset in the CSV."""
        import soundfile as sf

        rows = []
        ends = self._word_csv.groupby("Segment")["offset"].max()
        for seg in range(1, N_SEGMENTS + 1):
            path = self.stimulus_path(stim_file_for_segment(seg))
            info = sf.info(str(path))
            duration = info.frames / info.samplerate
            need = float(ends.get(seg, 0.0))
            if duration < need:
                raise DatasetError(
                    f"{path}: lasts {duration:.3f} s but its last word ends at {need:.3f} s in {self.csv_path.name}; "
                    "the wav is truncated or is another segment — download it again."
                )
            rows.append((seg, path.name, duration, need))
        return pd.DataFrame(rows, columns=["segment", "stim_file", "duration_s", "last_word_offset_s"])

    # ---- segment onsets and the shift check ----------------------------------------------------

    def label_onsets(self, subject: str) -> pd.DataFrame:
        """Onsets of the segments as labelled in the subject's events.tsv (``segment eeg_onset_s …``)."""
        path = self.events_path(subject)
        return label_onsets(read_events(path), self._word_csv, source=path)

    def audio_onsets(self, subject: str) -> pd.DataFrame:
        """True segment onsets from the Aux5 channel (see ``find_segment_onsets``); empty without Aux5."""
        if subject in self._audio_cache:
            return self._audio_cache[subject]
        import soundfile as sf

        raw = self._load_raw(Recording(subject=subject, task=TASK))
        if AUDIO_CHANNEL not in raw.ch_names:
            log.warning("sub-%s: no %s channel; audio check not possible", subject, AUDIO_CHANNEL)
            out = pd.DataFrame(columns=["segment", "eeg_onset_s", "peak_corr", "second_corr"])
        else:
            aux = raw.get_data(picks=[AUDIO_CHANNEL])[0]
            wavs = {}
            for seg in range(1, N_SEGMENTS + 1):
                data, sr = sf.read(str(self.stimulus_path(stim_file_for_segment(seg))), dtype="float32")
                wavs[seg] = (data, float(sr))
            out = find_segment_onsets(
                aux,
                raw.info["sfreq"],
                wavs,
                rate_hz=self.envelope_rate_hz,
                min_corr=self.audio_min_corr,
                min_margin=self.audio_min_margin,
            )
        self._audio_cache[subject] = out
        return out

    def decide(self, subject: str) -> dict[str, object]:
        """The segment decision of one subject (one row of ``segment_decisions``)."""
        labels = self.label_onsets(subject)
        onsets = dict(zip(labels["segment"], labels["eeg_onset_s"], strict=True))
        i_shift, i_res = interval_shift(
            onsets, reference_intervals_s=self.reference_intervals_s, tol_s=self.interval_tol_s
        )
        a_shift, a_n, a_dev = None, 0, float("nan")
        if self.audio_check:
            a_shift, a_n, a_dev = audio_shift(labels, self.audio_onsets(subject), tol_s=self.audio_tol_s)
        row: dict[str, object] = {
            "subject": subject,
            "n_labels": len(labels),
            "interval_shift": i_shift,
            "interval_residual_s": i_res,
            "audio_shift": a_shift,
            "audio_n_matched": a_n if self.audio_check else None,
            "audio_max_dev_s": a_dev,
        }
        if a_shift is not None and i_shift is not None and a_shift != i_shift:
            shift, action = None, "exclude"
            reason = f"interval pattern says shift {i_shift} but the Aux5 audio says {a_shift}"
        else:
            shift = a_shift if a_shift is not None else i_shift
            evidence = "Aux5 audio" if a_shift is not None else "inter-segment intervals"
            if self.audio_check and a_shift is None:
                evidence += " (audio check inconclusive)"
            if shift is None:
                action = "exclude"
                reason = "segment labels match neither the reference intervals nor the audio"
            elif shift == 0:
                action, reason = "keep", f"labels match the segments ({evidence})"
            else:
                action = "relabel" if self.shift_policy == "relabel" else "exclude"
                reason = f"events labelled {shift:+d} segment(s) off ({evidence}); policy {self.shift_policy}"
        row.update(shift=shift, action=action, reason=reason)
        return row

    @cached_property
    def _decision_file_table(self) -> pd.DataFrame:
        path = self.decisions_file
        assert path is not None
        require_content(
            path,
            what="segment decisions",
            fix="write it with `python -m hearlike.datasets.alice segment-check`.",
        )
        table = pd.read_csv(path, sep="\t", dtype={"subject": str}, keep_default_na=False, na_values=["n/a"])
        check_columns(table, DECISION_COLUMNS, source=path)
        table["subject"] = table["subject"].str.zfill(3)
        if not table["action"].isin(["keep", "relabel", "exclude"]).all():
            raise DatasetError(f"{path}: action must be keep, relabel or exclude.")
        if table.loc[table["action"] != "exclude", "shift"].isna().any():
            raise DatasetError(f"{path}: a kept or relabelled subject needs a shift value.")
        return table.set_index("subject", drop=False)

    def decision(self, subject: str) -> dict[str, object]:
        """The segment decision of one subject, from ``decisions_file`` when given, else computed (and logged)."""
        if subject in self._decision_cache:
            return self._decision_cache[subject]
        if self.decisions_file is not None:
            table = self._decision_file_table
            if subject not in table.index:
                raise DatasetError(
                    f"{self.decisions_file}: no decision for sub-{subject}; rerun "
                    "`python -m hearlike.datasets.alice segment-check`."
                )
            row = table.loc[subject].to_dict()
        else:
            if not self.events_path(subject).exists():
                raise DatasetError(
                    f"{self.events_path(subject)}: word events missing, so sub-{subject}'s segments cannot be "
                    "placed; download it again or leave the subject out."
                )
            row = self.decide(subject)
            if row["action"] != "keep":
                log.warning("sub-%s: %s — %s", subject, row["action"], row["reason"])
        self._decision_cache[subject] = row
        return row

    def segment_decisions(self) -> pd.DataFrame:
        """``DECISION_COLUMNS`` per candidate subject: detected shift, evidence and action (keep/relabel/exclude)."""
        rows = [self.decision(s) for s in self.candidate_subjects()]
        return pd.DataFrame(rows, columns=list(DECISION_COLUMNS)).reset_index(drop=True)

    def stim_onsets(self, recording: Recording) -> pd.DataFrame:
        """Where each segment wav starts in the recording, after the shift correction (extra column ``segment``).

        A relabelled subject's label k onset is the onset of segment k + shift; segments that fall outside
        1…12 after relabelling (or before the recording started) are absent.
        """
        subject = recording.subject
        row = self.decision(subject)
        if row["action"] == "exclude":
            raise DatasetError(f"sub-{subject}: excluded from the Alice analysis — {row['reason']}.")
        labels = self.label_onsets(subject)
        out = pd.DataFrame(
            {
                "run": None,
                "segment": labels["segment"].to_numpy() + int(row["shift"]),
                "eeg_onset_s": labels["eeg_onset_s"].to_numpy(dtype=float),
            }
        )
        out = out[out["segment"].between(1, N_SEGMENTS)].sort_values("segment").reset_index(drop=True)
        out.insert(1, "stim_file", out["segment"].map(stim_file_for_segment))
        return out[[*STIM_ONSET_COLUMNS, "segment"]]


# ------------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hearlike.datasets.alice segment-check --bids-root ROOT --out FILE [--audio-check]``."""
    ap = argparse.ArgumentParser(prog="python -m hearlike.datasets.alice")
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("segment-check", help="write the per-subject segment decisions for review")
    sc.add_argument("--bids-root", type=Path, required=True)
    sc.add_argument("--out", type=Path, default=Path("resources/alice/segment_decisions.tsv"))
    sc.add_argument("--policy", choices=SHIFT_POLICIES, default="relabel")
    sc.add_argument(
        "--audio-check", action="store_true", help="also cross-correlate Aux5 with the wavs (reads EEG)"
    )
    sc.add_argument("--subjects", nargs="+")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        adapter = AliceDataset(
            bids_root=args.bids_root,
            subjects=args.subjects,
            shift_policy=args.policy,
            audio_check=args.audio_check,
        )
        table = adapter.segment_decisions()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_tsv(table, args.out)
    print(f"{args.out}: {len(table)} subjects, {int((table['action'] == 'exclude').sum())} excluded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
