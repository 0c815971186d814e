"""EEG ingest (mne-bids), preprocessing (METHODS §2 decisions, plus a code-faithful mode) and sentence segmentation."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd
from mne_bids import BIDSPath, make_dataset_description, read_raw_bids
from scipy import signal

from hearlike import __version__
from hearlike.datasets.base import DatasetAdapter, DatasetError, Recording
from hearlike.io import save_npz_dict, sentence_key

log = logging.getLogger(__name__)
N_NEIGHBOURS = 4  # neighbours whose mean a good channel must resemble (spatial smoothness of scalp EEG)


def bids_path(adapter: DatasetAdapter, rec: Recording) -> BIDSPath:
    """The raw recording's BIDSPath."""
    return BIDSPath(root=adapter.bids_root, subject=rec.subject, session=rec.session, task=rec.task, run=rec.run,
                    datatype="eeg", suffix="eeg")


def read_recording(adapter: DatasetAdapter, rec: Recording) -> mne.io.BaseRaw:
    """Read one recording (the adapter's own checked reader when it has one, else ``read_raw_bids``)."""
    reader = getattr(adapter, "read_raw", None)
    if reader is not None:
        raw = reader(rec)
        raw.load_data(verbose=False)
        return raw
    return read_bids_recording(adapter, rec)


def read_bids_recording(adapter: DatasetAdapter, rec: Recording) -> mne.io.BaseRaw:
    """Read one recording with ``read_raw_bids``; errors name the missing file."""
    bp = bids_path(adapter, rec)
    matches = bp.match()
    if not matches:
        raise DatasetError(f"{bp.directory}: no EEG file for {rec.label} (task {rec.task}); is bids_root "
                           f"({adapter.bids_root}) the dataset's root and is the subject downloaded?")
    bp = matches[0] if len(matches) == 1 else next(m for m in matches if m.extension in (".vhdr", ".edf", ".bdf", ".set"))
    raw = read_raw_bids(bp, verbose=False)
    sidecar = bp.copy().update(extension=".json")
    if sidecar.fpath.exists():
        declared = json.loads(sidecar.fpath.read_text()).get("SamplingFrequency")
        if declared not in (None, "n/a") and abs(float(declared) - raw.info["sfreq"]) > 1e-6:
            raise DatasetError(f"{sidecar.fpath}: SamplingFrequency {declared} disagrees with the data file "
                               f"({raw.info['sfreq']} Hz); the recording or its sidecar is corrupt")
    raw.load_data(verbose=False)
    return raw


def detect_bad_channels(data: np.ndarray, positions: np.ndarray, *, z_threshold: float,
                        min_correlation: float) -> dict[int, str]:
    """Channel index → reason, for flat, abnormally variable or spatially inconsistent channels.

    Unlike the paper code (B31), the variability criterion is a robust z (median/MAD of log SD), so
    an outlier cannot mask itself, the flat threshold is relative (unit-free), and the consistency
    criterion correlates each channel with the mean of its nearest neighbours, excluding itself.
    """
    sd = data.std(axis=1)
    reasons: dict[int, str] = {}
    med = np.median(sd)
    for i in np.flatnonzero(sd < 1e-3 * med):
        reasons[int(i)] = "flat"
    log_sd = np.log(np.maximum(sd, 1e-30))
    mad = np.median(np.abs(log_sd - np.median(log_sd))) * 1.4826
    if mad > 0:
        z = (log_sd - np.median(log_sd)) / mad
        for i in np.flatnonzero(np.abs(z) > z_threshold):
            reasons.setdefault(int(i), f"robust z of SD = {z[i]:.1f}")
    d2 = ((positions[:, None, :] - positions[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    for i in range(len(data)):
        if reasons.get(i) == "flat":
            continue
        neighbours = [j for j in np.argsort(d2[i]) if j not in reasons][:N_NEIGHBOURS]
        r = np.corrcoef(data[i], data[neighbours].mean(axis=0))[0, 1]
        if not np.isfinite(r) or r < min_correlation:
            reasons.setdefault(i, f"correlation with neighbours = {r:.2f}")
    return reasons


def preprocess_improved(raw: mne.io.BaseRaw, *, line_freq: float, l_freq: float, h_freq: float, notch: bool,
                        use_dataset_marks: bool, detect: bool, z_threshold: float, min_correlation: float,
                        interpolate: bool, reference: str) -> dict[str, Any]:
    """METHODS §2 decisions, in place: notch, zero-phase band-pass, bads (dataset ∪ detected), spline, average ref."""
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    nyq = raw.info["sfreq"] / 2
    if notch:
        freqs = np.arange(line_freq, min(nyq, h_freq + line_freq), line_freq)
        freqs = freqs[freqs < nyq]
        if len(freqs):
            raw.notch_filter(freqs, picks=picks, verbose=False)
    raw.filter(l_freq, h_freq, picks=picks, verbose=False)
    dataset_bads = list(raw.info["bads"]) if use_dataset_marks else []
    detected: dict[str, str] = {}
    if detect:
        eeg_names = [raw.ch_names[i] for i in picks]
        pos = _positions(raw, eeg_names)
        found = detect_bad_channels(raw.get_data(picks=picks), pos, z_threshold=z_threshold,
                                    min_correlation=min_correlation)
        detected = {eeg_names[i]: why for i, why in found.items()}
    raw.info["bads"] = sorted(set(dataset_bads) | set(detected))
    bads = list(raw.info["bads"])
    if interpolate and bads:
        raw.interpolate_bads(reset_bads=True, mode="accurate", verbose=False)
    if reference == "average":
        raw.set_eeg_reference("average", projection=False, verbose=False)
    return {"dataset_bads": dataset_bads, "detected_bads": detected, "interpolated": bads if interpolate else []}


def preprocess_code_faithful(raw: mne.io.BaseRaw, *, l_freq: float, h_freq: float) -> dict[str, Any]:
    """The paper code's ``preprocess_eeg`` (scipy ba-filtfilt, 50 Hz notch, mean removal, its bad-channel rules,
    inverse-distance interpolation, average reference over the EEG rows), kept for comparison."""
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    x = raw.get_data(picks=picks)
    fs = raw.info["sfreq"]
    nyq = fs / 2
    b, a = signal.butter(4, [np.clip(l_freq / nyq, 1e-3, 0.999), np.clip(h_freq / nyq, 1e-3, 0.999)], btype="band")
    x = signal.filtfilt(b, a, x, axis=-1)
    b, a = signal.iirnotch(50.0, 30.0, fs)
    x = signal.filtfilt(b, a, x, axis=-1)
    x = x - x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1)
    z = (sd - np.median(sd)) / (sd.std() + 1e-12)
    corr = np.array([np.corrcoef(c, x.mean(axis=0))[0, 1] for c in x])
    bad = (sd < 1e-6) | (np.abs(z) > 3.0) | (np.abs(np.nan_to_num(corr)) < 0.4)
    names = [raw.ch_names[i] for i in picks]
    pos = _positions(raw, names)
    good = np.flatnonzero(~bad)
    for i in np.flatnonzero(bad):
        w = 1.0 / (np.linalg.norm(pos[good] - pos[i], axis=1) + 1e-6)
        x[i] = (w[:, None] * x[good]).sum(0) / w.sum()
    x = x - x.mean(axis=0, keepdims=True)
    raw._data[picks] = x
    raw.info["bads"] = []
    return {"dataset_bads": [], "detected_bads": {names[i]: "paper rule" for i in np.flatnonzero(bad)},
            "interpolated": [names[i] for i in np.flatnonzero(bad)]}


def _positions(raw: mne.io.BaseRaw, names: list[str]) -> np.ndarray:
    montage = raw.get_montage()
    if montage is None:
        raise DatasetError("recording has no electrode positions; set the dataset's montage in config.yaml")
    ch_pos = montage.get_positions()["ch_pos"]
    missing = [n for n in names if n not in ch_pos or not np.all(np.isfinite(ch_pos[n]))]
    if missing:
        raise DatasetError(f"no electrode position for {missing}; check the montage named in config.yaml")
    return np.array([ch_pos[n] for n in names])


def preprocess_subject(*, adapter: DatasetAdapter, subject: str, out_dir: Path, mode: str, l_freq: float,
                       h_freq: float, notch: bool, bad_channels: Mapping[str, Any], interpolate: bool,
                       reference: str) -> list[dict[str, Any]]:
    """Step function: preprocess every recording of one subject into BIDS derivatives (FIF + JSON sidecar)."""
    mne.set_log_level("WARNING")
    deriv_root = out_dir.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = []
    for rec in adapter.recordings(subject):
        raw = read_recording(adapter, rec)
        if raw.get_montage() is None:
            raw.set_montage(adapter.montage, on_missing="warn")
        if mode == "improved":
            info = preprocess_improved(raw, line_freq=adapter.line_freq, l_freq=l_freq, h_freq=h_freq, notch=notch,
                                       interpolate=interpolate, reference=reference, **bad_channels)
        elif mode == "code_faithful":
            info = preprocess_code_faithful(raw, l_freq=l_freq, h_freq=h_freq)
        else:
            raise ValueError(f"config.yaml: preprocessing.mode {mode!r} is not improved or code_faithful")
        out = derivative_path(out_dir, rec)
        raw.save(out, overwrite=True, verbose=False)
        summary = {"recording": rec.label, "mode": mode, "sfreq": raw.info["sfreq"], "l_freq": l_freq,
                   "h_freq": h_freq, "line_freq": adapter.line_freq, **info}
        out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
        log.info("%s: bads from dataset %s, detected %s", rec.label, info["dataset_bads"], info["detected_bads"])
        summaries.append(summary)
    make_dataset_description(path=deriv_root, name="hearlike preprocessed EEG", dataset_type="derivative",
                             generated_by=[{"Name": "hearlike", "Version": __version__,
                                            "Description": f"hearlike.eeg.preprocess_subject (mode={mode})"}],
                             source_datasets=[{"URL": str(adapter.bids_root)}], overwrite=True, verbose=False)
    return summaries


def derivative_path(out_dir: Path, rec: Recording) -> Path:
    """``sub-XX[_ses-YY]_task-T[_run-NN]_desc-preproc_eeg.fif`` inside the subject's derivatives folder."""
    parts = [f"sub-{rec.subject}"] + ([f"ses-{rec.session}"] if rec.session else []) + [f"task-{rec.task}"]
    parts += [f"run-{rec.run}"] if rec.run else []
    return out_dir / ("_".join(parts) + "_desc-preproc_eeg.fif")


def segment_subject(*, adapter: DatasetAdapter, subject: str, preproc_dir: Path, sentences: pd.DataFrame,
                    out: Path, post_s: float = 1.0) -> pd.DataFrame:
    """Step function: cut each sentence's EEG span (same times as its audio clip) from the preprocessed data.

    Also stores the ``post_s`` seconds after the sentence (``.post``) for word-locked windows that
    reach past the last word.
    """
    arrays: dict[str, np.ndarray] = {}
    rows = []
    ch_names: list[str] | None = None
    sfreq = None
    for rec in adapter.recordings(subject):
        fif = derivative_path(preproc_dir, rec)
        if not fif.exists():
            raise DatasetError(f"{fif}: preprocessed recording missing; rerun rule preprocess for sub-{subject}")
        raw = mne.io.read_raw_fif(fif, preload=True, verbose=False)
        raw.pick("eeg")
        data, sfreq = raw.get_data(), raw.info["sfreq"]
        ch_names = ch_names or list(raw.ch_names)
        if list(raw.ch_names) != ch_names:
            raise DatasetError(f"{fif}: channel set differs from the subject's other recordings")
        for onset in adapter.stim_onsets(rec).itertuples():
            for s in sentences[sentences["stim_file"] == onset.stim_file].itertuples():
                start = round((onset.eeg_onset_s + s.onset_s) * sfreq)
                n = round(s.duration_s * sfreq)
                if start < 0 or start + n > data.shape[1]:
                    raise DatasetError(
                        f"{fif}: sentence {s.sentence_id} needs EEG up to {(start + n) / sfreq:.2f} s but the "
                        f"recording ends at {data.shape[1] / sfreq:.2f} s (EEG shorter than its audio)"
                    )
                if abs(n / sfreq - s.duration_s) > 1.0 / sfreq:
                    raise AssertionError(f"sentence {s.sentence_id}: EEG span and audio clip differ in duration")
                key = sentence_key(s.sentence_id)
                arrays[key] = data[:, start : start + n].astype(np.float32)
                arrays[key + ".post"] = data[:, start + n : start + n + round(post_s * sfreq)].astype(np.float32)
                rows.append(dict(sentence_id=s.sentence_id, recording=rec.label, start_sample=start, n_samples=n,
                                 duration_s=n / sfreq))
    if not rows:
        raise DatasetError(f"sub-{subject}: no sentence falls inside any recording; check the stimulus mapping")
    table = pd.DataFrame(rows).sort_values("sentence_id")
    save_npz_dict(out, arrays, meta={"ch_names": ch_names, "sfreq": sfreq, "subject": subject,
                                     "sentence_ids": table["sentence_id"].tolist(), "post_s": post_s})
    return table


__all__ = ["detect_bad_channels", "preprocess_subject", "read_recording", "segment_subject"]


def inventory(*, adapter: DatasetAdapter, out: Path) -> pd.DataFrame:
    """Step function: read every recording once with ``read_raw_bids`` and list it, failing early on bad files."""
    from hearlike.io import write_tsv

    mne.set_log_level("WARNING")
    decisions = {}
    if hasattr(adapter, "segment_decisions"):  # Alice: segment labels checked per subject (shift, relabel/exclude)
        for row in adapter.segment_decisions().to_dict("records"):
            decisions[row["subject"]] = row
            level = logging.INFO if row["action"] == "keep" else logging.WARNING
            log.log(level, "sub-%s: segments %s — %s", row["subject"], row["action"], row["reason"])
    rows = []
    for subject in adapter.subjects():
        decision = decisions.get(subject, {})
        for rec in adapter.recordings(subject):
            raw = read_recording(adapter, rec)
            for onset in adapter.stim_onsets(rec).itertuples():
                rows.append(dict(subject=subject, recording=rec.label, run=rec.run or "n/a",
                                 stim_file=onset.stim_file, eeg_onset_s=onset.eeg_onset_s, sfreq=raw.info["sfreq"],
                                 n_eeg=len(mne.pick_types(raw.info, eeg=True)), duration_s=raw.times[-1],
                                 dataset_bads=",".join(raw.info["bads"]) or "n/a",
                                 segment_action=decision.get("action", "n/a"),
                                 segment_reason=decision.get("reason", "n/a")))
    table = pd.DataFrame(rows)
    write_tsv(table, out)
    return table
