"""Synthetic copies of the two real dataset layouts: the datasets' real metadata, synthetic signals.

They let the whole study run, offline, on exactly the file layout of OpenNeuro ds004408 1.0.8 and of NEMAR
nm000180 1.1.3 (``../shared/DATASETS.md``; the real metadata files are copied from ``metadata``, normally
``tests/data/<dataset>``). Nothing in them is an analysis result: they test that a configuration pointed at
a copy of either dataset runs without code changes.

ds004408 copy (``write_ds004408_copy``)
    Runs ``01``/``02`` play the bundled demo stimuli (``resources/demo/stimuli/run-0N.wav``: real speech
    with exact word times), written as ``stimuli/audioNN.wav`` in the real format (44.1 kHz stereo 16 bit)
    with a Prosodylab-style ``audioNN.TextGrid`` (tiers ``phones`` and ``words``) and, beside the dataset,
    the punctuated text ``<text_dir>/runNN.txt`` that the sentence-table rule reads. Each subject's run is
    128-channel BrainVision at 512 Hz with the real sub-001 sidecars (``RecordingDuration`` set to the
    synthetic length) and starts with the audio (EEG t = 0 is audio t = 0), lasting ``eeg_tail_s`` longer.

Alice copy (``write_alice_copy``)
    The real word table, ``datasets.mat``, participants and sidecars; per segment a "speech" wav (noise
    bursts over each CSV word, 44.1 kHz mono) as long as its last word plus ``segment_tail_s``. sub-001 and
    sub-026 get their real ``events.tsv`` (sub-026's words are labelled one segment early, DATASETS.md §2.6);
    other subjects get sub-001's events moved in time. The recording (60 scalp channels, VEOG and the audio
    copy Aux5, 500 Hz) covers every segment at its true onset, and Aux5 carries the segment audio there.

Signals, in µV: a volume-conducted 1/f background, ``line_freq`` mains, and a response to the speech
envelope (lag ``response_lag_s``) with a smooth fronto-central topography, so the EEG tracks the audio.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import mne
import numpy as np
import pandas as pd
from scipy.signal import butter, resample_poly, sosfiltfilt

from hearlike.seeding import derive_seed

DS004408_TOP = ("dataset_description.json", "participants.tsv", "participants.json", "README", "CHANGES")
ALICE_TOP = ("dataset_description.json", "participants.tsv", "participants.json", "README.md",
             "task-alicelistening_events.json")
WAV_SR = 44100
MICROVOLT = 1e-6


# ------------------------------------------------------------------------------------------------
# signals


def speech_envelope(audio: np.ndarray, sr: int, sfreq: float) -> np.ndarray:
    """Amplitude envelope of the audio at ``sfreq``, low-passed at 8 Hz (peak 1)."""
    from hearlike.datasets.alice import audio_envelope

    env = np.clip(audio_envelope(audio, sr, band_sfreq=sr, rate_hz=sfreq, highpass_hz=0.0), 0.0, None)
    env = sosfiltfilt(butter(4, 8.0, fs=sfreq, output="sos"), env)
    peak = np.abs(env).max()
    return env / peak if peak > 0 else env


def pink_background(n_channels: int, n_times: int, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The demo's 1/f noise, spatially smoothed with a Gaussian kernel over electrode distance (unit variance)."""
    from hearlike.demo.eeg import pink_noise

    dist = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    mixed = np.exp(-((dist / 0.04) ** 2)) @ pink_noise(n_channels, n_times, rng)
    return mixed / mixed.std()


def montage_positions(montage: str, names: Sequence[str]) -> np.ndarray:
    """Electrode positions (m) of ``names`` in an MNE standard montage."""
    pos = mne.channels.make_standard_montage(montage).get_positions()["ch_pos"]
    return np.array([pos[n] for n in names])


def topography(positions: np.ndarray) -> np.ndarray:
    """A smooth fronto-central map (peak 1) around the vertex, where auditory responses project."""
    vertex = positions[np.argmax(positions[:, 2])]
    return np.exp(-((np.linalg.norm(positions - vertex, axis=1) / 0.06) ** 2))


def synthetic_eeg(
    *,
    envelope: np.ndarray,
    positions: np.ndarray,
    sfreq: float,
    line_freq: float,
    seed: int,
    response_lag_s: float = 0.15,
    response_uv: float = 6.0,
    background_uv: float = 10.0,
    mains_uv: float = 4.0,
) -> np.ndarray:
    """Scalp EEG (channels × times, µV) whose response follows ``envelope`` (same length) after a lag."""
    rng = np.random.default_rng(seed)
    n = len(envelope)
    lag = round(response_lag_s * sfreq)
    driven = np.concatenate([np.zeros(lag), envelope[: n - lag]])
    driven = (driven - driven.mean()) / (driven.std() or 1.0)
    t = np.arange(n) / sfreq
    return (
        background_uv * pink_background(len(positions), n, positions, rng)
        + response_uv * topography(positions)[:, None] * driven[None, :]
        + mains_uv * np.sin(2 * np.pi * line_freq * t + rng.uniform(0, 2 * np.pi))[None, :]
    )


def _write_brainvision(eeg_dir: Path, stem: str, data_uv: np.ndarray, sfreq: float, names: Sequence[str],
                       sidecar: Path, channels: Path) -> None:
    """BrainVision in µV (float32, as both datasets) plus the real sidecars with RecordingDuration matched."""
    import pybv

    eeg_dir.mkdir(parents=True, exist_ok=True)
    pybv.write_brainvision(data=data_uv * MICROVOLT, sfreq=sfreq, ch_names=list(names), fname_base=f"{stem}_eeg",
                           folder_out=eeg_dir, unit="µV", fmt="binary_float32", overwrite=True)
    meta = json.loads(sidecar.read_text(encoding="utf-8-sig"))
    meta["RecordingDuration"] = (data_uv.shape[1] - 1) / sfreq
    (eeg_dir / f"{stem}_eeg.json").write_text(json.dumps(meta, indent=4), encoding="utf-8")
    shutil.copyfile(channels, eeg_dir / f"{stem}_channels.tsv")


def _copy_top(metadata: Path, dest: Path, names: Sequence[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (metadata / name).exists():
            shutil.copyfile(metadata / name, dest / name)


# ------------------------------------------------------------------------------------------------
# ds004408


def write_textgrid(path: Path, words: pd.DataFrame, duration_s: float) -> None:
    """A Prosodylab-Aligner-like TextGrid: ``words`` (and a one-interval-per-word ``phones`` tier)."""
    from praatio import textgrid as tgio

    entries = [(float(r.onset_s), float(r.offset_s), str(r.word).upper()) for r in words.itertuples()]
    grid = tgio.Textgrid()
    for name in ("phones", "words"):
        grid.addTier(tgio.IntervalTier(name, entries, 0.0, duration_s))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def write_ds004408_copy(
    dest: str | Path,
    *,
    metadata: str | Path,
    demo_stimuli: str | Path,
    text_dir: str | Path | None = None,
    subjects: Sequence[str] = ("001", "002"),
    runs: Sequence[str] = ("01", "02"),
    eeg_tail_s: float = 2.0,
    line_freq: float = 50.0,
    seed: int = 0,
) -> Path:
    """Write the ds004408 copy described in the module docstring; returns ``dest``."""
    dest, metadata, demo_stimuli = Path(dest), Path(metadata), Path(demo_stimuli)
    import soundfile as sf

    _copy_top(metadata, dest, DS004408_TOP)
    words = pd.read_csv(demo_stimuli / "words.tsv", sep="\t")
    truth = pd.read_csv(demo_stimuli / "sentences_truth.tsv", sep="\t")
    (dest / "stimuli").mkdir(exist_ok=True)
    names = mne.channels.make_standard_montage("biosemi128").ch_names
    positions = montage_positions("biosemi128", names)
    side = metadata / "sub-001" / "eeg"
    sfreq = 512.0
    envelopes: dict[str, np.ndarray] = {}
    for k, run in enumerate(runs, start=1):
        stim = f"run-{k:02d}.wav"
        audio, sr = sf.read(str(demo_stimuli / stim), dtype="float64")
        ratio = Fraction(WAV_SR, sr)
        hifi = resample_poly(audio, ratio.numerator, ratio.denominator)
        sf.write(dest / "stimuli" / f"audio{run}.wav", np.stack([hifi, hifi], axis=1), WAV_SR, subtype="PCM_16")
        duration = len(hifi) / WAV_SR
        write_textgrid(dest / "stimuli" / f"audio{run}.TextGrid", words[words["stim_file"] == stim], duration)
        if text_dir is not None:
            Path(text_dir).mkdir(parents=True, exist_ok=True)
            text = " ".join(truth.loc[truth["stim_file"] == stim, "text"])
            (Path(text_dir) / f"run{run}.txt").write_text(text + "\n", encoding="utf-8")
        envelopes[run] = speech_envelope(hifi, WAV_SR, sfreq)
    for subject in subjects:
        for run in runs:
            env = envelopes[run]
            env = np.concatenate([env, np.zeros(round(eeg_tail_s * sfreq))])
            data = synthetic_eeg(envelope=env, positions=positions, sfreq=sfreq, line_freq=line_freq,
                                 seed=derive_seed(seed, "ds004408", subject, run))
            template = run if (side / f"sub-001_task-listening_run-{run}_eeg.json").exists() else "01"
            stem = f"sub-{subject}_task-listening_run-{run}"
            _write_brainvision(dest / f"sub-{subject}" / "eeg", stem, data, sfreq, names,
                               side / f"sub-001_task-listening_run-{template}_eeg.json",
                               side / f"sub-001_task-listening_run-{template}_channels.tsv")
    return dest


# ------------------------------------------------------------------------------------------------
# Alice (nm000180)


def _segment_audio(words: pd.DataFrame, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Noise bursts with a syllable-rate modulation over each word's interval; silence elsewhere."""
    n = round(duration_s * WAV_SR)
    env = np.zeros(n)
    for on, off in zip(words["onset"], words["offset"], strict=True):
        i0, i1 = round(on * WAV_SR), min(round(off * WAV_SR), n)
        if i1 > i0:
            t = np.arange(i1 - i0) / WAV_SR
            env[i0:i1] = np.hanning(i1 - i0) * (0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t)) * rng.uniform(0.4, 1.0)
    return 0.25 * env * rng.standard_normal(n)


def write_alice_copy(
    dest: str | Path,
    *,
    metadata: str | Path,
    subjects: Sequence[str] = ("001", "026"),
    segment_tail_s: float = 0.6,
    eeg_tail_s: float = 2.0,
    line_freq: float = 60.0,
    seed: int = 0,
) -> Path:
    """Write the nm000180 copy described in the module docstring; returns ``dest``."""
    import soundfile as sf

    from hearlike.datasets.alice import (
        AUDIO_CHANNEL,
        EOG_CHANNEL,
        N_SEGMENTS,
        SCALP_CHANNELS,
        label_onsets,
        read_events,
        read_word_csv,
        stim_file_for_segment,
    )

    dest, metadata = Path(dest), Path(metadata)
    _copy_top(metadata, dest, ALICE_TOP)
    shutil.copytree(metadata / "sourcedata", dest / "sourcedata", dirs_exist_ok=True)
    csv = read_word_csv(dest / "sourcedata" / "AliceChapterOne-EEG.csv")
    rng = np.random.default_rng(derive_seed(seed, "alice", "stimuli"))
    (dest / "stimuli").mkdir(exist_ok=True)
    wavs: dict[int, np.ndarray] = {}
    for seg in range(1, N_SEGMENTS + 1):
        words = csv[csv["Segment"] == seg]
        wavs[seg] = _segment_audio(words, float(words["offset"].max()) + segment_tail_s, rng)
        sf.write(dest / "stimuli" / stim_file_for_segment(seg), wavs[seg], WAV_SR, subtype="PCM_16")

    side = metadata / "sub-001" / "eeg"
    task = "alicelistening"
    channels = pd.read_csv(side / f"sub-001_task-{task}_channels.tsv", sep="\t", dtype=str, encoding="utf-8-sig")
    names = channels["name"].tolist()
    scalp = [names.index(c) for c in SCALP_CHANNELS]
    positions = montage_positions("easycap-M10", SCALP_CHANNELS)
    sfreq = 500.0
    base_events = side / f"sub-001_task-{task}_events.tsv"
    for k, subject in enumerate(subjects):
        real = metadata / f"sub-{subject}" / "eeg" / f"sub-{subject}_task-{task}_events.tsv"
        eeg_dir = dest / f"sub-{subject}" / "eeg"
        eeg_dir.mkdir(parents=True, exist_ok=True)
        events_path = eeg_dir / f"sub-{subject}_task-{task}_events.tsv"
        if real.exists():
            shutil.copyfile(real, events_path)
        else:  # the same story heard from a later start
            moved = pd.read_csv(base_events, sep="\t", keep_default_na=False)
            moved["onset"] = (moved["onset"] + 1.5 * (k + 1)).round(6)
            moved.to_csv(events_path, sep="\t", index=False)
        labels = label_onsets(read_events(events_path), csv, source=events_path)
        true_onsets = _true_segment_onsets(labels, subject)
        end = max(on + len(wavs[s]) / WAV_SR for s, on in true_onsets.items()) + eeg_tail_s
        n = round(end * sfreq)
        audio_track = np.zeros(n)
        for seg, onset in true_onsets.items():
            y = sosfiltfilt(butter(6, 200.0, fs=WAV_SR, output="sos"), wavs[seg])  # the amplifier's anti-alias
            t = onset + np.arange(len(y)) / WAV_SR
            grid = np.arange(n) / sfreq
            audio_track += np.interp(grid, t, y, left=0.0, right=0.0)
        envelope = np.zeros(n)
        for seg, onset in true_onsets.items():
            env = speech_envelope(wavs[seg], WAV_SR, sfreq)
            i0 = round(onset * sfreq)
            if i0 < 0:
                env, i0 = env[-i0:], 0
            envelope[i0:i0 + len(env)] += env[: n - i0]
        data = np.zeros((len(names), n))
        data[scalp] = synthetic_eeg(envelope=envelope, positions=positions, sfreq=sfreq, line_freq=line_freq,
                                    seed=derive_seed(seed, "alice", subject))
        eog_rng = np.random.default_rng(derive_seed(seed, "alice", subject, "veog"))
        data[names.index(EOG_CHANNEL)] = 20.0 * eog_rng.standard_normal(n)
        data[names.index(AUDIO_CHANNEL)] = 1e3 * audio_track / (audio_track.std() or 1.0)
        stem = f"sub-{subject}_task-{task}"
        _write_brainvision(eeg_dir, stem, data, sfreq, names, side / f"sub-001_task-{task}_eeg.json",
                           side / f"sub-001_task-{task}_channels.tsv")
        for suffix in ("electrodes.tsv", "coordsystem.json"):
            shutil.copyfile(side / f"sub-001_space-CapTrak_{suffix}", eeg_dir / f"sub-{subject}_space-CapTrak_{suffix}")
    return dest


#: subjects of nm000180 1.1.3 whose word events are labelled one segment early (DATASETS.md §2.6)
SHIFTED_SUBJECTS = frozenset({"026", "034", "035", "036"})


def _true_segment_onsets(labels: pd.DataFrame, subject: str) -> dict[int, float]:
    """Segment → true onset (s): a shifted subject's label k sits at segment k + 1; its segment 1 is
    placed one reference interval earlier when the recording had already begun, else left out."""
    from hearlike.datasets.alice import REFERENCE_INTERVALS_S

    onsets = dict(zip(labels["segment"].astype(int), labels["eeg_onset_s"].astype(float), strict=True))
    if subject not in SHIFTED_SUBJECTS:
        return onsets
    moved = {seg + 1: on for seg, on in onsets.items() if seg + 1 <= 12}
    first = moved[2] - REFERENCE_INTERVALS_S[0]
    if first >= 0:
        moved[1] = first
    return dict(sorted(moved.items()))
