"""Sentence table and sentence audio clips from a dataset's word table (stage ``sentences``).

A sentence spans ``[onset of its first word, offset of its last word)`` of its stimulus file; the clip
is cut from that file at 16 kHz. The EEG span of the same sentence (stage ``segment``) uses exactly the
same times plus the stimulus file's onset in the recording, so the two have equal duration by
construction; :func:`hearlike.eeg.segment_subject` checks it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import resample_poly

from hearlike.datasets.base import DatasetAdapter, DatasetError
from hearlike.io import save_npz_dict, sentence_key, write_tsv

AUDIO_SR = 16_000
MIN_DURATION_S = 0.1  # the paper code's min_duration: shorter spans carry no usable frames


def sentence_table(words: pd.DataFrame, *, min_duration_s: float = MIN_DURATION_S) -> pd.DataFrame:
    """One row per sentence: ``sentence_id run stim_file onset_s offset_s duration_s n_words text``."""
    # words outside any sentence (sentence_id NA, e.g. Alice words across a segment boundary) are dropped
    words = words.dropna(subset=["sentence_id"])
    rows = []
    for sid, w in words.sort_values(["sentence_id", "onset_s"]).groupby("sentence_id", sort=True):
        stim = w["stim_file"].unique()
        if len(stim) != 1:
            raise DatasetError(f"sentence {sid} spans several stimulus files {list(stim)}; fix the word table")
        onset, offset = float(w["onset_s"].min()), float(w["offset_s"].max())
        rows.append(dict(sentence_id=int(sid), stim_file=stim[0], onset_s=onset, offset_s=offset,
                         duration_s=offset - onset, n_words=len(w), text=" ".join(map(str, w["word"]))))
    table = pd.DataFrame(rows)
    table.insert(1, "run", _run_of(table["stim_file"]))
    return table[table["duration_s"] >= min_duration_s].reset_index(drop=True)


def _natural_key(name: str) -> list[object]:
    """Sort key that orders ``SoundFile10`` after ``SoundFile9``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _run_of(stim_files: pd.Series) -> list[str]:
    """A run label per stimulus file, in natural file order (01, 02, ...)."""
    order = {f: f"{i + 1:02d}" for i, f in enumerate(sorted(stim_files.unique(), key=_natural_key))}
    return [order[f] for f in stim_files]


def load_audio(path: Path, *, sr: int = AUDIO_SR) -> np.ndarray:
    """Mono float32 audio at ``sr`` (polyphase resampling, which is anti-aliased)."""
    if not Path(path).exists():
        raise DatasetError(f"{path}: stimulus audio not found; download the dataset's stimuli (see README)")
    x, file_sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if file_sr != sr:
        g = np.gcd(int(file_sr), sr)
        x = resample_poly(x, sr // g, int(file_sr) // g).astype(np.float32)
    return x


def write_sentences(*, adapter: DatasetAdapter, out_sentences: Path, out_words: Path, out_audio: Path) -> pd.DataFrame:
    """Step function: write the sentence table, the word table and the 16 kHz sentence clips."""
    words = adapter.word_table()
    table = sentence_table(words)
    clips: dict[str, np.ndarray] = {}
    for stim_file, rows in table.groupby("stim_file"):
        audio = load_audio(adapter.stimulus_path(stim_file))
        for r in rows.itertuples():
            start, stop = round(r.onset_s * AUDIO_SR), round(r.offset_s * AUDIO_SR)
            if stop > len(audio):
                raise DatasetError(
                    f"{adapter.stimulus_path(stim_file)}: audio is {len(audio) / AUDIO_SR:.2f} s but sentence "
                    f"{r.sentence_id} ends at {r.offset_s:.2f} s; the word table and audio do not match"
                )
            clips[sentence_key(r.sentence_id)] = audio[start:stop]
    kept = words[words["sentence_id"].isin(table["sentence_id"])]
    write_tsv(table, out_sentences)
    write_tsv(kept, out_words)
    save_npz_dict(out_audio, clips, meta={"sr": AUDIO_SR})
    return table
