"""OpenNeuro ds004408 1.0.8 ("EEG responses to continuous naturalistic speech", The Old Man and the Sea).

Layout facts (docs: ../shared/DATASETS.md §1): 19 subjects × 20 runs, task ``listening``, BrainVision at
512 Hz, 128 channels ``A1…D32`` (= MNE ``biosemi128``), unreferenced, no events.tsv. Run ``NN`` plays
``stimuli/audioNN.wav`` and EEG t = 0 is audio t = 0. Words come from ``stimuli/audioNN.TextGrid``
(Prosodylab-Aligner, tiers ``phones``/``words``). Mains is 50 Hz (Ireland; the sidecar says n/a).

Sentence ids are ``run × 1000 + k`` (k = 1, 2, … within the run), so a run's ids do not move when another
run's segmentation changes. Sentences come from

* by default, pauses in the TextGrid (split at silences >= 0.3 s, merge pieces < 0.5 s), or
* the reviewed tables ``resources/ds004408/sentences_runNN.tsv`` when ``sentence_dir`` is given; they are
  written by ``python -m hearlike.datasets.ds004408 sentence-table`` from the punctuated book text
  (``--text-dir``, one ``runNN.txt`` per run) or, without text, from pauses.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hearlike.datasets.base import STIM_ONSET_COLUMNS, WORD_COLUMNS, DatasetError, Recording, subject_labels
from hearlike.datasets.download import check_brainvision_recording, require_content
from hearlike.datasets.textgrid import align_words_to_text, pause_pieces, read_textgrid_words
from hearlike.io import write_tsv

if TYPE_CHECKING:
    import mne
    from mne_bids import BIDSPath

log = logging.getLogger(__name__)

TASK = "listening"
N_RUNS = 20
SENTENCE_ID_STRIDE = 1000
#: tolerance for word offsets / TextGrid ends beyond the wav's end (aligner rounding)
AUDIO_TOLERANCE_S = 0.05
SENTENCE_TABLE_COLUMNS = (
    "sentence",
    "first_word",
    "last_word",
    "n_words",
    "onset_s",
    "offset_s",
    "method",
    "ends_with_punct",
    "text",
    "book_text",
)
_RUN_RE = re.compile(r"_run-(\d+)_")
#: mne-bids warnings that are expected for this dataset's layout
_EXPECTED_WARNINGS = (
    r".*events\.tsv.*",
    r".*electrodes\.tsv.*",
    r".*coordsystem.*",
    r".*participants\.tsv.*",
    r".*[Uu]nable to map.*",
)


def run_labels(runs: Sequence[str | int] | None) -> list[str]:
    """Run labels ``01``…: the given runs, or all 20 when None."""
    return [f"{int(r):02d}" for r in runs] if runs is not None else [f"{k:02d}" for k in range(1, N_RUNS + 1)]


def stim_file_for_run(run: str) -> str:
    """``audioNN.wav`` for run ``NN``."""
    return f"audio{int(run):02d}.wav"


def textgrid_for_run(run: str) -> str:
    """``audioNN.TextGrid`` for run ``NN``."""
    return f"audio{int(run):02d}.TextGrid"


def sentence_table_name(run: str) -> str:
    """``sentences_runNN.tsv``."""
    return f"sentences_run{int(run):02d}.tsv"


def build_sentence_table(
    *,
    words: pd.DataFrame,
    text: str | None = None,
    min_pause_s: float = 0.3,
    min_piece_s: float = 0.5,
    min_match: float = 0.8,
    source: str | Path = "TextGrid",
) -> pd.DataFrame:
    """Sentence table of one run (``SENTENCE_TABLE_COLUMNS``) from its TextGrid words.

    With ``text`` the words are aligned to the punctuated text and cut after sentence-final punctuation;
    fewer than ``min_match`` of the words matching the text exactly raises (wrong text for this run).
    Without text the pause-based fallback is used.
    """
    n = len(words)
    book = [""] * n
    if text is not None:
        aln = align_words_to_text(words["word"].astype(str).tolist(), text)
        if not aln.match_fraction >= min_match:
            raise DatasetError(
                f"{source}: only {aln.match_fraction:.0%} of the words match the given text "
                f"(need {min_match:.0%}); is it the text of this run?"
            )
        ends = aln.ends.copy()
        punct = ends.copy()
        ends[-1] = True  # the run's audio ends here, finished sentence or not
        labels = np.concatenate([[1], 1 + np.cumsum(ends[:-1])]).astype(int)
        book = aln.book_text
        method = "text"
    else:
        labels = pause_pieces(
            words["onset_s"].to_numpy(),
            words["offset_s"].to_numpy(),
            min_pause_s=min_pause_s,
            min_piece_s=min_piece_s,
        )
        punct = np.zeros(n, dtype=bool)
        method = "pause"
    rows = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        part = words.iloc[idx]
        rows.append(
            (
                int(k),
                int(part["word_index"].iloc[0]),
                int(part["word_index"].iloc[-1]),
                len(idx),
                float(part["onset_s"].iloc[0]),
                float(part["offset_s"].max()),
                method,
                bool(punct[idx[-1]]) if method == "text" else np.nan,
                " ".join(part["word"].astype(str)),
                " ".join(b for b in (book[i] for i in idx) if b),
            )
        )
    return pd.DataFrame(rows, columns=list(SENTENCE_TABLE_COLUMNS))


def assign_sentences(words: pd.DataFrame, table: pd.DataFrame, *, source: str | Path) -> np.ndarray:
    """Sentence number (from 1) per word from a sentence table; raises when the table does not fit the words."""
    missing = [c for c in ("sentence", "first_word", "last_word", "text") if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {missing}; regenerate it with the sentence-table CLI."
        )
    n = len(words)
    labels = np.zeros(n, dtype=int)
    expected_first = 1
    for row in table.itertuples(index=False):
        first, last = int(row.first_word), int(row.last_word)
        if first != expected_first or last < first or last > n:
            raise DatasetError(
                f"{source}: sentence {row.sentence} covers words {first}–{last}, but sentences must tile the "
                f"{n} TextGrid words in order (next expected first_word {expected_first}). Fix the row or "
                "regenerate the table (python -m hearlike.datasets.ds004408 sentence-table)."
            )
        labels[first - 1 : last] = int(row.sentence)
        words_text = " ".join(words["word"].iloc[first - 1 : last].astype(str))
        if str(row.text) != words_text:
            raise DatasetError(
                f"{source}: sentence {row.sentence} text {str(row.text)[:60]!r} differs from the TextGrid words "
                f"{words_text[:60]!r}; the TextGrid changed — regenerate the table."
            )
        expected_first = last + 1
    if expected_first != n + 1:
        raise DatasetError(f"{source}: the table ends at word {expected_first - 1} of {n}; regenerate it.")
    if len(set(table["sentence"])) != len(table) or (table["sentence"] <= 0).any():
        raise DatasetError(f"{source}: sentence numbers must be unique positive integers.")
    return labels


class DS004408:
    """The DatasetAdapter of ds004408 (see module docstring).

    ``task``, ``montage`` and ``line_freq`` come from config.yaml's dataset block; task and montage must
    be the dataset's own (``listening``, ``biosemi128``), ``line_freq`` defaults to 50 Hz.
    ``subjects``: a list of labels, or ``"all"``/None for every subject of participants.tsv.
    """

    name = "ds004408"
    non_scalp_channels: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        bids_root: str | Path,
        subjects: Sequence[str] | str | None = None,
        runs: Sequence[str | int] | None = None,
        stimuli_dir: str | Path | None = None,
        sentence_dir: str | Path | None = None,
        task: str = TASK,
        montage: str = "biosemi128",
        line_freq: float = 50.0,
        min_pause_s: float = 0.3,
        min_piece_s: float = 0.5,
    ) -> None:
        self.bids_root = Path(bids_root)
        if not (self.bids_root / "dataset_description.json").exists():
            raise DatasetError(
                f"{self.bids_root / 'dataset_description.json'}: not found; {self.bids_root} is not the ds004408 "
                "BIDS root (python -m hearlike.datasets.download ds004408 --dest DIR)."
            )
        if task != TASK or montage != "biosemi128":
            raise DatasetError(
                f"config.yaml datasets.ds004408: task {task!r} / montage {montage!r} must be {TASK!r} / 'biosemi128' "
                "(the recordings' channels are A1…D32)."
            )
        self.task = task
        self.montage = montage
        self.line_freq = float(line_freq)
        self._subjects = subject_labels(subjects)
        self._runs = run_labels(runs) if runs is not None else None
        self.stimuli_dir = Path(stimuli_dir) if stimuli_dir is not None else self.bids_root / "stimuli"
        self.sentence_dir = Path(sentence_dir) if sentence_dir is not None else None
        self.min_pause_s = float(min_pause_s)
        self.min_piece_s = float(min_piece_s)

    # ---- subjects and recordings -------------------------------------------------------------

    def participants(self) -> list[str]:
        """Subject labels listed in ``participants.tsv``."""
        path = self.bids_root / "participants.tsv"
        if not path.exists():
            raise DatasetError(f"{path}: not found; download the dataset's top-level files again.")
        table = pd.read_csv(path, sep="\t", dtype=str, encoding="utf-8-sig", keep_default_na=False)
        if "participant_id" not in table.columns:
            raise DatasetError(f"{path}: no participant_id column; the file is not the dataset's original.")
        return [p.removeprefix("sub-") for p in table["participant_id"]]

    def subjects(self) -> list[str]:
        """The configured subjects, else all of ``participants.tsv``; each must be on disk."""
        listed = self._subjects if self._subjects is not None else self.participants()
        source = (
            "the configured subject list"
            if self._subjects is not None
            else self.bids_root / "participants.tsv"
        )
        absent = [s for s in listed if not (self.bids_root / f"sub-{s}").is_dir()]
        if absent:
            raise DatasetError(
                f"{source}: subject(s) {['sub-' + s for s in absent]} listed but absent from {self.bids_root}; "
                "download them or configure the subjects that are present."
            )
        return list(listed)

    def recordings(self, subject: str) -> list[Recording]:
        """The subject's runs (from ``_eeg.json``/``.vhdr`` names), in run order."""
        eeg_dir = self.bids_root / f"sub-{subject}" / "eeg"
        found = {
            m.group(1)
            for p in eeg_dir.glob(f"sub-{subject}_task-{TASK}_run-*_eeg.*")
            if p.suffix in (".json", ".vhdr") and (m := _RUN_RE.search(p.name))
        }
        runs = sorted(found, key=int)
        if self._runs is not None:
            lacking = [r for r in self._runs if r not in found]
            if lacking:
                raise DatasetError(
                    f"{eeg_dir}: configured run(s) {lacking} have no _eeg.json/.vhdr; download them or drop them."
                )
            runs = [r for r in runs if r in self._runs]
        if not runs:
            raise DatasetError(f"{eeg_dir}: no recordings of task {TASK!r}; download sub-{subject}.")
        return [Recording(subject=subject, task=TASK, run=r) for r in runs]

    def runs(self) -> list[str]:
        """The runs whose words are in the word table (configured, else all 20)."""
        return run_labels(self._runs)

    # ---- files of one recording ----------------------------------------------------------------

    def _stem(self, recording: Recording) -> Path:
        return (
            self.bids_root
            / f"sub-{recording.subject}"
            / "eeg"
            / f"sub-{recording.subject}_task-{TASK}_run-{recording.run}"
        )

    def bids_path(self, recording: Recording) -> BIDSPath:
        """The ``mne_bids.BIDSPath`` of the recording's ``.vhdr``."""
        from mne_bids import BIDSPath

        return BIDSPath(
            root=self.bids_root,
            subject=recording.subject,
            task=TASK,
            run=recording.run,
            datatype="eeg",
            suffix="eeg",
            extension=".vhdr",
        )

    def dataset_bads(self, recording: Recording) -> list[str]:
        """Channels marked ``bad`` in the run's ``_channels.tsv`` (what read_raw_bids puts in info['bads'])."""
        path = Path(f"{self._stem(recording)}_channels.tsv")
        require_content(path, what="channels sidecar", fix="download the dataset's metadata again.")
        table = pd.read_csv(path, sep="\t", dtype=str, encoding="utf-8-sig", keep_default_na=False)
        if "name" not in table.columns or "status" not in table.columns:
            raise DatasetError(
                f"{path}: needs columns name and status; the file is not the dataset's original."
            )
        return table.loc[table["status"].str.strip().str.lower() == "bad", "name"].tolist()

    def read_raw(
        self, recording: Recording, *, preload: bool = False, check_span: bool = True
    ) -> mne.io.BaseRaw:
        """Read one run with ``read_raw_bids`` after integrity checks; montage and 50 Hz mains set.

        Raises when a sidecar or data file is missing, the sampling rates disagree, the data file is
        truncated, the channels are not biosemi128's, or (``check_span``) the EEG is shorter than the audio.
        """
        import mne
        from mne_bids import read_raw_bids

        stem = self._stem(recording)
        vhdr = Path(f"{stem}_eeg.vhdr")
        header = check_brainvision_recording(
            vhdr=vhdr, sidecar=Path(f"{stem}_eeg.json"), channels_tsv=Path(f"{stem}_channels.tsv")
        )
        expected = mne.channels.make_standard_montage(self.montage).ch_names
        if list(header.channel_names) != expected:
            raise DatasetError(f"{vhdr}: channels are not the 128 biosemi128 names A1…D32 in order.")
        with warnings.catch_warnings():
            for pattern in _EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            raw = read_raw_bids(self.bids_path(recording), verbose="error")
        raw.info["line_freq"] = self.line_freq
        raw.set_montage(self.montage)
        if check_span:
            need = self.stimulus_duration(stim_file_for_run(recording.run))
            have = raw.n_times / raw.info["sfreq"]
            if have + 1.0 / raw.info["sfreq"] < need:
                raise DatasetError(
                    f"{vhdr}: recording lasts {have:.3f} s but its audio {stim_file_for_run(recording.run)} lasts "
                    f"{need:.3f} s; the EEG does not cover the stimulus — download the run again."
                )
        if preload:
            raw.load_data()
        return raw

    # ---- stimuli and words ---------------------------------------------------------------------

    def stimulus_path(self, stim_file: str) -> Path:
        """``stimuli/audioNN.wav``; raises when the name is not a run's audio or the file is missing."""
        if not re.fullmatch(r"audio\d{2}\.wav", stim_file):
            raise DatasetError(f"{stim_file!r} is not a ds004408 stimulus name (audioNN.wav).")
        path = self.stimuli_dir / stim_file
        require_content(
            path,
            what="stimulus audio",
            fix="python -m hearlike.datasets.download ds004408 --dest DIR --stimuli-only",
        )
        return path

    def stimulus_duration(self, stim_file: str) -> float:
        """Length of a stimulus wav in seconds (from its header)."""
        import soundfile as sf

        path = self.stimulus_path(stim_file)
        try:
            info = sf.info(str(path))
        except RuntimeError as exc:
            raise DatasetError(f"{path}: not a readable wav ({exc}); download it again.") from exc
        return info.frames / info.samplerate

    def run_words(self, run: str) -> pd.DataFrame:
        """The TextGrid words of one run: ``word_index word onset_s offset_s``."""
        return read_textgrid_words(self.stimuli_dir / textgrid_for_run(run)).words

    def _sentence_labels(self, run: str, words: pd.DataFrame) -> np.ndarray:
        if self.sentence_dir is None:
            return pause_pieces(
                words["onset_s"].to_numpy(),
                words["offset_s"].to_numpy(),
                min_pause_s=self.min_pause_s,
                min_piece_s=self.min_piece_s,
            )
        path = self.sentence_dir / sentence_table_name(run)
        if not path.exists():
            raise DatasetError(
                f"{path}: sentence table not found; write it with `python -m hearlike.datasets.ds004408 "
                f"sentence-table --bids-root {self.bids_root} --out-dir {self.sentence_dir}` or leave "
                "sentence_dir unset for the pause-based fallback."
            )
        table = pd.read_csv(path, sep="\t", encoding="utf-8-sig", keep_default_na=False, na_values=["n/a"])
        return assign_sentences(words, table, source=path)

    @cached_property
    def _word_table(self) -> pd.DataFrame:
        parts = []
        for run in self.runs():
            words = self.run_words(run)
            labels = self._sentence_labels(run, words)
            parts.append(
                pd.DataFrame(
                    {
                        "stim_file": stim_file_for_run(run),
                        "word_index": words["word_index"].to_numpy(),
                        "word": words["word"].to_numpy(),
                        "onset_s": words["onset_s"].to_numpy(),
                        "offset_s": words["offset_s"].to_numpy(),
                        "sentence_id": int(run) * SENTENCE_ID_STRIDE + labels,
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)[list(WORD_COLUMNS)]

    def word_table(self) -> pd.DataFrame:
        """Columns ``WORD_COLUMNS``; all TextGrid words of the configured runs."""
        return self._word_table.copy()

    def check_stimuli(self) -> pd.DataFrame:
        """Check every run's wav against its TextGrid; raises when the audio is shorter than the words need."""
        rows = []
        for run in self.runs():
            tier = read_textgrid_words(self.stimuli_dir / textgrid_for_run(run))
            stim = stim_file_for_run(run)
            duration = self.stimulus_duration(stim)
            need = max(float(tier.words["offset_s"].max()), tier.xmax)
            if duration + AUDIO_TOLERANCE_S < need:
                raise DatasetError(
                    f"{self.stimuli_dir / stim}: lasts {duration:.3f} s but {tier.path.name} needs {need:.3f} s; "
                    "the wav is truncated or belongs to another run — download it again."
                )
            rows.append(
                (run, stim, duration, float(tier.words["offset_s"].max()), tier.xmax, len(tier.words))
            )
        return pd.DataFrame(
            rows,
            columns=["run", "stim_file", "duration_s", "last_word_offset_s", "textgrid_xmax_s", "n_words"],
        )

    def stim_onsets(self, recording: Recording) -> pd.DataFrame:
        """Run NN plays audioNN.wav from EEG t = 0 (no triggers; README: the starts are aligned)."""
        if recording.run is None:
            raise DatasetError(f"{recording.label}: ds004408 recordings need a run entity.")
        return pd.DataFrame(
            [(recording.run, stim_file_for_run(recording.run), 0.0)], columns=list(STIM_ONSET_COLUMNS)
        )


# ------------------------------------------------------------------------------------------------
# CLI


def write_sentence_table(
    *,
    textgrid: str | Path,
    out: str | Path,
    text: str | Path | None = None,
    min_pause_s: float = 0.3,
    min_piece_s: float = 0.5,
    min_match: float = 0.8,
) -> pd.DataFrame:
    """Write one run's ``sentences_runNN.tsv``: sentence ends from the punctuated ``text`` file, else pauses."""
    words = read_textgrid_words(textgrid).words
    source = Path(textgrid)
    book = None
    if text is not None:
        source = Path(text)
        if not source.exists():
            raise DatasetError(
                f"{source}: punctuated text not found; put the text read in {Path(textgrid).with_suffix('.wav').name} "
                "there (UTF-8), or leave sentence_text_dir unset for pause-based sentences."
            )
        book = source.read_text(encoding="utf-8")
    table = build_sentence_table(
        words=words, text=book, min_pause_s=min_pause_s, min_piece_s=min_piece_s, min_match=min_match, source=source
    )
    write_tsv(table, out)
    log.info("%s: %d sentences (%s)", out, len(table), table["method"].iloc[0])
    return table


def write_sentence_tables(
    *,
    bids_root: str | Path,
    out_dir: str | Path,
    runs: Sequence[str | int] | None = None,
    text_dir: str | Path | None = None,
    stimuli_dir: str | Path | None = None,
    min_pause_s: float = 0.3,
    min_piece_s: float = 0.5,
    min_match: float = 0.8,
) -> list[Path]:
    """Write ``sentences_runNN.tsv`` per run into ``out_dir`` (see ``write_sentence_table``).

    With ``text_dir`` each run's punctuated text is read from ``text_dir/runNN.txt`` (UTF-8).
    """
    stim = Path(stimuli_dir) if stimuli_dir is not None else Path(bids_root) / "stimuli"
    written = []
    for run in run_labels(runs):
        out = Path(out_dir) / sentence_table_name(run)
        write_sentence_table(
            textgrid=stim / textgrid_for_run(run),
            text=Path(text_dir) / f"run{run}.txt" if text_dir is not None else None,
            out=out,
            min_pause_s=min_pause_s,
            min_piece_s=min_piece_s,
            min_match=min_match,
        )
        written.append(out)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hearlike.datasets.ds004408 sentence-table --bids-root ROOT [--text-dir DIR] [--out-dir DIR]``."""
    ap = argparse.ArgumentParser(prog="python -m hearlike.datasets.ds004408")
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("sentence-table", help="write resources/ds004408/sentences_runNN.tsv for review")
    st.add_argument("--bids-root", type=Path, required=True)
    st.add_argument("--out-dir", type=Path, default=Path("resources/ds004408"))
    st.add_argument("--runs", nargs="+", help="run numbers (default: 01…20)")
    st.add_argument(
        "--text-dir", type=Path, help="directory with runNN.txt punctuated text (else pause-based)"
    )
    st.add_argument("--stimuli-dir", type=Path, help="where audioNN.TextGrid are (default BIDS_ROOT/stimuli)")
    st.add_argument("--min-pause-s", type=float, default=0.3)
    st.add_argument("--min-piece-s", type=float, default=0.5)
    st.add_argument("--min-match", type=float, default=0.8)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        paths = write_sentence_tables(
            bids_root=args.bids_root,
            out_dir=args.out_dir,
            runs=args.runs,
            text_dir=args.text_dir,
            stimuli_dir=args.stimuli_dir,
            min_pause_s=args.min_pause_s,
            min_piece_s=args.min_piece_s,
            min_match=args.min_match,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
