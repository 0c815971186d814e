"""The contract every dataset adapter fulfils, so that ingest, segmentation and the workflow never branch on the dataset.

An adapter answers five questions about a dataset on disk:

1. which subjects and which recordings (BIDS entities) exist;
2. how to read one recording's raw EEG (`mne_bids.read_raw_bids`) and which channels are scalp EEG;
3. which montage and mains frequency apply;
4. the word table: every word with its stimulus file, onset/offset **relative to the stimulus file**
   and its sentence id;
5. where each stimulus file starts inside one subject's recording (`stim_onsets`), because the
   datasets differ here: ds004408 and the demo align EEG t=0 with audio t=0 per run; Alice has one
   recording per subject with 12 segments whose onsets come from the word events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

WORD_COLUMNS = ("stim_file", "word_index", "word", "onset_s", "offset_s", "sentence_id")
STIM_ONSET_COLUMNS = ("run", "stim_file", "eeg_onset_s")


@dataclass(frozen=True)
class Recording:
    """One continuous EEG recording of one subject (BIDS entities)."""

    subject: str
    task: str
    run: str | None = None
    session: str | None = None
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A file-name-safe id such as ``sub-001_run-01``."""
        parts = [f"sub-{self.subject}"]
        if self.session:
            parts.append(f"ses-{self.session}")
        if self.run:
            parts.append(f"run-{self.run}")
        return "_".join(parts)


class DatasetError(ValueError):
    """Bad or missing input; the message names the file and the fix."""


def subject_labels(subjects: Sequence[str] | str | None) -> list[str] | None:
    """Configured subjects as labels without ``sub-``; None for ``"all"`` (every subject of the dataset)."""
    if subjects is None or subjects == "all":
        return None
    if isinstance(subjects, str):
        raise DatasetError(f"config.yaml: subjects must be a list of labels or 'all', not {subjects!r}")
    return [str(s).removeprefix("sub-") for s in subjects]


@runtime_checkable
class DatasetAdapter(Protocol):
    """What the workflow needs to know about one dataset."""

    name: str
    bids_root: Path
    montage: str
    line_freq: float
    #: channels that exist in the recording but must stay out of the average reference (EOG, audio copy)
    non_scalp_channels: tuple[str, ...]

    def subjects(self) -> list[str]:
        """Subject labels (without ``sub-``) to analyse, after the dataset's own selection."""
        ...

    def recordings(self, subject: str) -> list[Recording]:
        """All recordings of a subject, in stimulus order."""
        ...

    def word_table(self) -> pd.DataFrame:
        """Columns ``WORD_COLUMNS``; one row per word; times relative to the word's stimulus file.

        ``sentence_id`` may be NA for a word that belongs to no analysed sentence (it is then dropped).
        """
        ...

    def stimulus_path(self, stim_file: str) -> Path:
        """Path of a stimulus audio file named in the word table."""
        ...

    def stim_onsets(self, recording: Recording) -> pd.DataFrame:
        """Columns ``STIM_ONSET_COLUMNS``: where each stimulus file starts in this recording (EEG seconds)."""
        ...


def check_columns(df: pd.DataFrame, required: tuple[str, ...], *, source: Path | str) -> None:
    """Raise a DatasetError naming ``source`` when ``df`` lacks a required column."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {missing}; expected at least {list(required)}. "
            "Check that the file is the dataset's original and not an edited copy."
        )
