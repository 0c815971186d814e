"""Adapter for the bundled demo dataset (synthetic BIDS-EEG written by :mod:`hearlike.demo.eeg`).

Layout follows ds004408: one BrainVision recording per run, ``run-NN`` plays ``stimuli/run-NN.wav``, and
EEG t = 0 is audio t = 0 (no events needed). The word table is ``stimuli/words.tsv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hearlike.datasets.base import STIM_ONSET_COLUMNS, WORD_COLUMNS, DatasetError, Recording, check_columns


@dataclass
class DemoDataset:
    """The bundled demo: stimuli in the repository, EEG generated into ``bids_root``."""

    bids_root: Path
    stimuli_dir: Path
    subject_labels: Sequence[str]
    task: str = "listening"
    montage: str = "biosemi32"
    line_freq: float = 50.0
    name: str = "demo"
    non_scalp_channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.bids_root = Path(self.bids_root)
        self.stimuli_dir = Path(self.stimuli_dir)

    def subjects(self) -> list[str]:
        """The configured subjects (the demo has no selection of its own)."""
        return list(self.subject_labels)

    def stim_files(self) -> list[str]:
        """Stimulus files in run order."""
        return sorted(self.word_table()["stim_file"].unique())

    def recordings(self, subject: str) -> list[Recording]:
        """One recording per stimulus file; run ``NN`` plays ``run-NN.wav``."""
        return [Recording(subject=subject, task=self.task, run=f.removeprefix("run-").removesuffix(".wav"))
                for f in self.stim_files()]

    def word_table(self) -> pd.DataFrame:
        """Exact word timings written with the stimuli (times relative to each run's wav)."""
        path = self.stimuli_dir / "words.tsv"
        if not path.exists():
            raise DatasetError(f"{path}: demo word table missing; regenerate with resources/demo/make_stimuli.py")
        words = pd.read_csv(path, sep="\t")
        check_columns(words, WORD_COLUMNS, source=path)
        return words[list(WORD_COLUMNS)]

    def stimulus_path(self, stim_file: str) -> Path:
        """Path of one run's audio."""
        return self.stimuli_dir / stim_file

    def stim_onsets(self, recording: Recording) -> pd.DataFrame:
        """EEG t = 0 is audio t = 0 for every run."""
        return pd.DataFrame([{"run": recording.run, "stim_file": f"run-{recording.run}.wav", "eeg_onset_s": 0.0}],
                            columns=list(STIM_ONSET_COLUMNS))

    def truth(self) -> pd.DataFrame:
        """Ground truth of the demo (sentence_id, text, prosody group, synthesis settings)."""
        return pd.read_csv(self.stimuli_dir / "sentences_truth.tsv", sep="\t")
