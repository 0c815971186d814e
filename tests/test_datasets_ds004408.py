"""ds004408 adapter on the real 1.0.8 sidecars (sub-001 runs 01–03) with synthetic signal files.

The BrainVision files and wavs are synthetic and short; the sidecars' RecordingDuration is set to the
synthetic length (nothing else in them is changed). The TextGrids are hand-made in the real layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pybv
import pytest
import soundfile as sf

from hearlike.datasets.base import STIM_ONSET_COLUMNS, WORD_COLUMNS, DatasetAdapter, DatasetError, Recording
from hearlike.datasets.ds004408 import DS004408, build_sentence_table, main, read_textgrid_words

DATA = Path(__file__).parent / "data" / "ds004408"
SFREQ = 512.0
BIOSEMI = mne.channels.make_standard_montage("biosemi128").ch_names
AUDIO_S = {"01": 12.0, "02": 6.0, "03": 5.0}  # hand-made TextGrids end at 12, 6 and 5 s
EEG_EXTRA_S = 1.5  # EEG runs longer than the audio, as in the dataset


def write_run(
    root: Path, run: str, seconds: float, *, sfreq: float = SFREQ, sidecar_sfreq: float = SFREQ
) -> None:
    """Synthetic 128-channel BrainVision run next to the real sidecars (RecordingDuration set to match)."""
    n = round(seconds * sfreq)
    eeg_dir = root / "sub-001" / "eeg"
    data = np.random.default_rng(int(run)).standard_normal((128, n)) * 1e-5
    pybv.write_brainvision(
        data=data,
        sfreq=sfreq,
        ch_names=BIOSEMI,
        fname_base=f"sub-001_task-listening_run-{run}_eeg",
        folder_out=eeg_dir,
        unit="µV",
        overwrite=True,
    )
    side = eeg_dir / f"sub-001_task-listening_run-{run}_eeg.json"
    meta = json.loads(side.read_text())
    meta["RecordingDuration"] = (n - 1) / sidecar_sfreq
    side.write_text(json.dumps(meta, indent=4))


def write_wav(path: Path, seconds: float, sr: int = 44100) -> None:
    """Stereo 16-bit noise, as the real stimuli are 44.1 kHz stereo."""
    x = np.random.default_rng(7).standard_normal((int(seconds * sr), 2)) * 0.05
    sf.write(path, x, sr, subtype="PCM_16")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds004408_built") / "ds004408"
    shutil.copytree(DATA, root, ignore=shutil.ignore_patterns("text"))
    for run, seconds in AUDIO_S.items():
        write_run(root, run, seconds + EEG_EXTRA_S)
        write_wav(root / "stimuli" / f"audio{run}.wav", seconds)
    return root


@pytest.fixture
def ds(built, tmp_path) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(built, tmp_path / "ds004408"))


def test_layout_and_protocol(built):
    ad = DS004408(bids_root=built, subjects=["001"], stimuli_dir=built / "stimuli")
    assert isinstance(ad, DatasetAdapter)
    assert ad.participants() == [f"{k:03d}" for k in range(1, 20)]  # BOM stripped
    assert ad.subjects() == ["001"]
    recs = ad.recordings("001")
    assert [r.run for r in recs] == ["01", "02", "03"]
    assert recs[0].label == "sub-001_run-01" and recs[0].task == "listening"
    assert ad.line_freq == 50.0 and ad.montage == "biosemi128" and ad.non_scalp_channels == ()
    onsets = ad.stim_onsets(recs[1])
    assert list(onsets.columns) == list(STIM_ONSET_COLUMNS)
    assert onsets.iloc[0].tolist() == ["02", "audio02.wav", 0.0]


def test_subject_listed_but_absent(built):
    ad = DS004408(bids_root=built, subjects="all")
    with pytest.raises(DatasetError, match=r"participants\.tsv: subject\(s\) \['sub-002'.*listed but absent"):
        ad.subjects()
    with pytest.raises(DatasetError, match=r"configured subject list: subject\(s\) \['sub-042'\]"):
        DS004408(bids_root=built, subjects=["042"]).subjects()


def test_read_raw_channels_montage_bads(built):
    ad = DS004408(bids_root=built, subjects=["001"])
    rec = Recording(subject="001", task="listening", run="01")
    raw = ad.read_raw(rec)
    assert raw.ch_names == BIOSEMI
    assert raw.info["sfreq"] == SFREQ and raw.info["line_freq"] == 50.0
    assert raw.n_times == int((AUDIO_S["01"] + EEG_EXTRA_S) * SFREQ)
    # bads from the real channels.tsv (DATASETS.md §1.2: sub-001 run-01 → B2, C20, C21, C24, C25)
    assert raw.info["bads"] == ["B2", "C20", "C21", "C24", "C25"] == ad.dataset_bads(rec)
    assert ad.dataset_bads(Recording(subject="001", task="listening", run="02")) == ["C20", "C21"]
    pos = raw.get_montage().get_positions()["ch_pos"]
    assert set(pos) == set(BIOSEMI) and all(np.isfinite(v).all() for v in pos.values())


def test_word_table_pause_fallback(built):
    ad = DS004408(bids_root=built, subjects=["001"], runs=["01", "02", "03"])
    words = ad.word_table()
    assert list(words.columns) == list(WORD_COLUMNS)
    assert len(words) == 28 + 11 + 6
    assert not words["word"].isin(["sil", "sp", ""]).any()
    run1 = words[words["stim_file"] == "audio01.wav"]
    # pauses >= 0.3 s split; the 0.4 s piece "it was" joins its neighbour across the shorter silence
    assert run1.groupby("sentence_id").size().tolist() == [8, 4, 3, 8, 5]
    assert sorted(run1["sentence_id"].unique()) == [1001, 1002, 1003, 1004, 1005]
    run2 = words[words["stim_file"] == "audio02.wav"]
    assert run2.groupby("sentence_id").size().to_dict() == {2001: 6, 2002: 5}
    assert words["sentence_id"].is_unique is False and (words["sentence_id"] > 0).all()
    assert (words.groupby("sentence_id")["stim_file"].nunique() == 1).all()
    stim = ad.check_stimuli()
    assert stim["n_words"].tolist() == [28, 11, 6]


def test_sentence_table_from_text_and_its_use(built, tmp_path):
    out = tmp_path / "resources"
    rc = main(
        [
            "sentence-table",
            "--bids-root",
            str(built),
            "--runs",
            "01",
            "--text-dir",
            str(DATA / "text"),
            "--out-dir",
            str(out),
        ]
    )
    assert rc == 0
    table = pd.read_csv(out / "sentences_run01.tsv", sep="\t")
    assert table["n_words"].tolist() == [8, 7, 6, 2, 5]
    assert table["method"].eq("text").all() and table["ends_with_punct"].all()
    assert table["book_text"].iloc[1] == "Santiago didn't look back; he rowed on!"
    ad = DS004408(bids_root=built, subjects=["001"], runs=["01"], sentence_dir=out)
    words = ad.word_table()
    assert words.groupby("sentence_id").size().tolist() == [8, 7, 6, 2, 5]
    assert words.loc[words["sentence_id"] == 1004, "word"].tolist() == ["it", "was"]

    # a table that no longer fits its TextGrid is refused
    table.loc[2, "text"] = "was the sea gull following him"
    table.to_csv(out / "sentences_run01.tsv", sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"sentences_run01\.tsv: sentence 3 text .* regenerate"):
        DS004408(bids_root=built, runs=["01"], sentence_dir=out).word_table()
    with pytest.raises(DatasetError, match=r"sentences_run02\.tsv: sentence table not found.*sentence-table"):
        DS004408(bids_root=built, runs=["02"], sentence_dir=out).word_table()


def test_sentence_table_pause_cli_and_wrong_text(built, tmp_path):
    assert (
        main(["sentence-table", "--bids-root", str(built), "--runs", "02", "--out-dir", str(tmp_path)]) == 0
    )
    table = pd.read_csv(tmp_path / "sentences_run02.tsv", sep="\t")
    assert table["method"].eq("pause").all() and table["n_words"].tolist() == [6, 5]
    words = read_textgrid_words(built / "stimuli" / "audio02.TextGrid").words
    with pytest.raises(DatasetError, match=r"run02\.txt: only \d+% of the words match"):
        build_sentence_table(words=words, text="Completely different words here.", source="run02.txt")


def test_missing_sidecar(ds):
    (ds / "sub-001" / "eeg" / "sub-001_task-listening_run-02_eeg.json").unlink()
    ad = DS004408(bids_root=ds, subjects=["001"])
    rec = Recording(subject="001", task="listening", run="02")
    with pytest.raises(DatasetError, match=r"run-02_eeg\.json: EEG sidecar \(_eeg\.json\) not found"):
        ad.read_raw(rec)


def test_wrong_sampling_rate(ds):
    write_run(ds, "01", AUDIO_S["01"] + EEG_EXTRA_S, sfreq=256.0, sidecar_sfreq=512.0)
    ad = DS004408(bids_root=ds, subjects=["001"])
    with pytest.raises(
        DatasetError, match=r"run-01_eeg\.vhdr: sampling rate 256 Hz disagrees with .*_eeg\.json \(512 Hz\)"
    ):
        ad.read_raw(Recording(subject="001", task="listening", run="01"))


def test_truncated_data_file(ds):
    ad = DS004408(bids_root=ds, subjects=["001"])
    eeg = ds / "sub-001" / "eeg" / "sub-001_task-listening_run-03_eeg.eeg"
    rec = Recording(subject="001", task="listening", run="03")
    size = eeg.stat().st_size
    with open(eeg, "r+b") as f:
        f.truncate(size - 1000)  # not a whole number of samples
    with pytest.raises(DatasetError, match=r"run-03_eeg\.eeg: .*not a whole number.*truncated"):
        ad.read_raw(rec)
    with open(eeg, "r+b") as f:
        f.truncate(128 * 4 * 512)  # whole samples, but far fewer than the sidecar's duration
    with pytest.raises(DatasetError, match=r"run-03_eeg\.eeg: holds 512 samples .* truncated"):
        ad.read_raw(rec)


def test_unfetched_annex_content(ds):
    eeg = ds / "sub-001" / "eeg" / "sub-001_task-listening_run-01_eeg.eeg"
    eeg.write_text("/annex/objects/SHA256E-s51380224--abc.eeg\n")
    ad = DS004408(bids_root=ds, subjects=["001"])
    with pytest.raises(DatasetError, match=r"run-01_eeg\.eeg: .*git-annex pointer.*datalad get"):
        ad.read_raw(Recording(subject="001", task="listening", run="01"))


def test_missing_textgrid(ds):
    (ds / "stimuli" / "audio02.TextGrid").unlink()
    ad = DS004408(bids_root=ds, subjects=["001"], runs=["01", "02"])
    with pytest.raises(DatasetError, match=r"audio02\.TextGrid: TextGrid not found"):
        ad.word_table()


def test_audio_shorter_than_needed(ds):
    ad = DS004408(bids_root=ds, subjects=["001"], runs=["01"])
    write_wav(ds / "stimuli" / "audio01.wav", 8.0)  # words run to 11.35 s
    with pytest.raises(
        DatasetError, match=r"audio01\.wav: lasts 8\.000 s but audio01\.TextGrid needs 12\.000 s"
    ):
        ad.check_stimuli()
    write_wav(ds / "stimuli" / "audio01.wav", 20.0)  # longer than the 13.5 s EEG
    with pytest.raises(DatasetError, match=r"run-01_eeg\.vhdr: recording lasts 13\.500 s but its audio"):
        ad.read_raw(Recording(subject="001", task="listening", run="01"))
    (ds / "stimuli" / "audio01.wav").unlink()
    with pytest.raises(DatasetError, match=r"audio01\.wav: stimulus audio not found"):
        ad.stimulus_path("audio01.wav")


def test_config_block_is_checked(built):
    with pytest.raises(DatasetError, match="montage 'biosemi64'"):
        DS004408(bids_root=built, montage="biosemi64")
    with pytest.raises(DatasetError, match=r"dataset_description\.json: not found"):
        DS004408(bids_root=built / "sub-001")
