"""Alice (nm000180 1.1.3) adapter: real metadata, and a small synthetic recording set for the audio check.

Real files (tests/data/nm000180, MANIFEST.tsv): the word CSV, datasets.mat, participants.tsv, sub-001's
sidecars and events, and sub-026's events (one of the subjects whose events are one segment off).
The signal tests use sub-001's real sidecars with synthetic BrainVision data, a synthetic word CSV and
synthetic segment "wavs", so that recordings stay about a minute long.
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
from scipy.signal import butter, sosfiltfilt

from hearlike.datasets.alice import (
    N_SEGMENTS,
    REFERENCE_INTERVALS_S,
    SCALP_CHANNELS,
    AliceDataset,
    audio_envelope,
    interval_shift,
    main,
    normalized_xcorr,
    read_use_list,
    stim_file_for_segment,
)
from hearlike.datasets.base import STIM_ONSET_COLUMNS, WORD_COLUMNS, DatasetAdapter, DatasetError, Recording

DATA = Path(__file__).parent / "data" / "nm000180"
SUB001 = DATA / "sub-001" / "eeg"
TASK = "alicelistening"
#: DATASETS.md §2.4, from the proc files: S01's first segment and the inter-segment intervals
DOC_FIRST_ONSET_S = 3.73
DOC_INTERVALS_S = (57.6, 60.9, 63.3, 70.0, 66.3, 63.8, 63.0, 57.4, 57.3, 61.3, 56.2)
SHIFTED_USE = ("026", "034", "035", "036")


def rec(subject: str) -> Recording:
    return Recording(subject=subject, task=TASK)


# ------------------------------------------------------------------------------------------------
# real metadata


@pytest.fixture(scope="module")
def meta_root(tmp_path_factory) -> Path:
    """The real top level plus a folder per participant; use subjects get sub-001's or sub-026's events."""
    root = tmp_path_factory.mktemp("alice_meta") / "nm000180"
    shutil.copytree(DATA, root)
    parts = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str, encoding="utf-8-sig")
    use = set(read_use_list(root / "sourcedata" / "datasets.mat"))
    ev001 = pd.read_csv(SUB001 / "sub-001_task-alicelistening_events.tsv", sep="\t", keep_default_na=False)
    ev026 = DATA / "sub-026" / "eeg" / "sub-026_task-alicelistening_events.tsv"
    for k, pid in enumerate(parts["participant_id"]):
        label = pid.removeprefix("sub-")
        eeg = root / pid / "eeg"
        eeg.mkdir(parents=True, exist_ok=True)
        events = eeg / f"{pid}_task-{TASK}_events.tsv"
        if label in ("001", "026") or label not in use:
            continue
        if label in SHIFTED_USE:
            shutil.copy(ev026, events)
        else:  # the same story heard from a different start time
            moved = ev001.copy()
            moved["onset"] = (moved["onset"] + 0.5 * k).round(6)
            moved.to_csv(events, sep="\t", index=False)
    return root


def test_word_table_counts():
    ad = AliceDataset(bids_root=DATA, subjects=["001"])
    words = ad.word_table()
    assert list(words.columns) == list(WORD_COLUMNS)
    assert len(words) == 2129
    assert words["sentence_id"].nunique() == 84 and set(words["sentence_id"].dropna()) == set(range(1, 85))
    per_seg = words.groupby("stim_file").size()
    assert [per_seg[stim_file_for_segment(k)] for k in range(1, 13)] == [
        174,
        177,
        184,
        214,
        193,
        197,
        178,
        175,
        156,
        187,
        157,
        137,
    ]
    assert words["word_index"].is_monotonic_increasing and words["word_index"].max() == 2150
    assert words.iloc[0][["word", "onset_s"]].tolist() == ["Alice", 0.046]
    # every sentence lies in one segment wav; 6 cross a boundary and keep their larger part
    assert (words.dropna().groupby("sentence_id")["stim_file"].nunique() == 1).all()
    cross = ad.cross_segment_words()
    assert cross.groupby("Sentence").size().to_dict() == {8: 9, 31: 13, 41: 6, 53: 11, 67: 6, 74: 9}
    assert words["sentence_id"].isna().sum() == 54
    s8 = words[words["sentence_id"] == 8]
    assert s8["stim_file"].unique().tolist() == [stim_file_for_segment(2)] and len(s8) == 53


def test_channels_and_montage():
    ch = pd.read_csv(SUB001 / "sub-001_task-alicelistening_channels.tsv", sep="\t", dtype={"name": str})
    scalp = ch.loc[ch["type"] == "EEG", "name"].tolist()
    assert tuple(scalp) == SCALP_CHANNELS and len(scalp) == 60
    assert tuple(ch.loc[ch["type"] != "EEG", "name"]) == AliceDataset.non_scalp_channels == ("VEOG", "Aux5")
    montage = set(mne.channels.make_standard_montage("easycap-M10").ch_names)
    assert set(scalp) <= montage and montage - set(scalp) == {"29"}
    sfp = pd.read_csv(
        DATA / "sourcedata" / "easycapM10-acti61_elec.sfp", sep=r"\s+", header=None, dtype={0: str}
    )
    assert set(scalp) <= set(sfp[0])


def test_analysable_subjects_and_policies(meta_root):
    ad = AliceDataset(bids_root=meta_root)
    assert isinstance(ad, DatasetAdapter)
    cand = ad.candidate_subjects()
    assert len(cand) == 31 and "004" not in cand and "016" not in cand and cand[0] == "001"
    assert ad.subjects() == cand  # relabel keeps all 31
    dec = ad.segment_decisions().set_index("subject")
    assert sorted(dec.index[dec["action"] == "relabel"]) == list(SHIFTED_USE)
    assert (dec.loc[list(SHIFTED_USE), "interval_shift"] == 1).all()
    assert dec.loc["001", "action"] == "keep" and dec.loc["001", "n_labels"] == 12
    assert "inter-segment intervals" in dec.loc["026", "reason"]
    excl = AliceDataset(bids_root=meta_root, shift_policy="exclude")
    assert len(excl.subjects()) == 27 and not set(SHIFTED_USE) & set(excl.subjects())
    with pytest.raises(DatasetError, match=r"sub-026: excluded .*policy exclude"):
        excl.stim_onsets(rec("026"))


def test_decisions_file_round_trip(meta_root, tmp_path):
    out = tmp_path / "segment_decisions.tsv"
    assert (
        main(["segment-check", "--bids-root", str(meta_root), "--out", str(out), "--policy", "exclude"]) == 0
    )
    ad = AliceDataset(bids_root=meta_root, decisions_file=out)
    assert len(ad.subjects()) == 27
    table = pd.read_csv(out, sep="\t", dtype={"subject": str})
    table[table["subject"] != "048"].to_csv(out, sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"segment_decisions\.tsv: no decision for sub-048"):
        AliceDataset(bids_root=meta_root, decisions_file=out).subjects()


def test_segment_onsets_sub001():
    ad = AliceDataset(bids_root=DATA, subjects=["001"])
    onsets = ad.stim_onsets(rec("001"))
    assert list(onsets.columns[:3]) == list(STIM_ONSET_COLUMNS)
    assert onsets["stim_file"].tolist() == [stim_file_for_segment(k) for k in range(1, 13)]
    assert onsets["eeg_onset_s"].iloc[0] == pytest.approx(DOC_FIRST_ONSET_S, abs=0.01)
    assert onsets["eeg_onset_s"].iloc[0] == pytest.approx(3.772 - 0.046, abs=1e-9)
    np.testing.assert_allclose(np.diff(onsets["eeg_onset_s"]), DOC_INTERVALS_S, atol=0.06)
    np.testing.assert_allclose(np.diff(onsets["eeg_onset_s"]), REFERENCE_INTERVALS_S, atol=0.05)


def test_real_shifted_subject_relabelled():
    ad = AliceDataset(bids_root=DATA, subjects=["001", "026"])
    labels = ad.label_onsets("026")
    assert labels["segment"].tolist() == list(range(1, 12))  # labels 1–11 …
    # … but their intervals are those of segments 2→12: the 57.6 s interval is missing
    np.testing.assert_allclose(np.diff(labels["eeg_onset_s"]), DOC_INTERVALS_S[1:], atol=0.06)
    onsets = ad.stim_onsets(rec("026"))
    assert onsets["segment"].tolist() == list(range(2, 13))
    assert onsets["eeg_onset_s"].iloc[0] == pytest.approx(53.95, abs=0.01)
    dec = ad.segment_decisions().set_index("subject")
    assert dec.loc["026", ["interval_shift", "shift", "action"]].tolist() == [1, 1, "relabel"]
    assert dec.loc["001", ["interval_shift", "shift", "action"]].tolist() == [0, 0, "keep"]


def test_interval_shift_rule():
    ref = np.concatenate([[0.0], np.cumsum(REFERENCE_INTERVALS_S)])
    full = {k: 10.0 + ref[k - 1] for k in range(1, 13)}
    assert interval_shift(full)[0] == 0
    missing_first = {k: 5.0 + ref[k] for k in range(1, 12)}  # label k is really segment k + 1
    assert interval_shift(missing_first)[0] == 1
    assert interval_shift({k: 60.0 * k for k in range(1, 12)})[0] is None
    assert interval_shift({1: 3.0})[0] is None


def test_subject_listed_but_absent(meta_root, tmp_path):
    root = Path(shutil.copytree(meta_root, tmp_path / "nm000180"))
    shutil.rmtree(root / "sub-037")
    with pytest.raises(
        DatasetError, match=r"participants\.tsv: subject\(s\) \['sub-037'\] listed but absent"
    ):
        AliceDataset(bids_root=root).subjects()
    with pytest.raises(DatasetError, match=r"configured subject list: subject\(s\) \['sub-004'\]"):
        AliceDataset(bids_root=root, subjects=["004"]).subjects()
    (root / "sub-038" / "eeg" / "sub-038_task-alicelistening_events.tsv").unlink()
    with pytest.raises(DatasetError, match=r"sub-038_task-alicelistening_events\.tsv: word events missing"):
        AliceDataset(bids_root=root, subjects=["038"]).subjects()


def test_events_that_disagree_with_the_csv(tmp_path):
    root = Path(shutil.copytree(DATA, tmp_path / "nm000180"))
    path = root / "sub-001" / "eeg" / "sub-001_task-alicelistening_events.tsv"
    ev = pd.read_csv(path, sep="\t", keep_default_na=False)
    ev.loc[5, "word"] = "Bob"
    ev.to_csv(path, sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"sub-001_task-alicelistening_events\.tsv: word_index 6 is 'Bob'"):
        AliceDataset(bids_root=root, subjects=["001"]).label_onsets("001")
    ev = pd.read_csv(DATA / "sub-001" / "eeg" / path.name, sep="\t", keep_default_na=False)
    ev.loc[100, "onset"] += 0.05  # one word 50 ms off its segment's offset
    ev.to_csv(path, sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"events\.tsv: within segment 1 the word onsets drift 5\d\.\d ms"):
        AliceDataset(bids_root=root, subjects=["001"]).label_onsets("001")


# ------------------------------------------------------------------------------------------------
# synthetic signals: 12 short segment wavs, an Aux5 copy of them, one subject missing its first segment

WAV_SR = 44100
EEG_SF = 500.0
SEG_S = [3.0 + 0.2 * k for k in range(1, 13)]
INTERVALS = [SEG_S[k - 1] + 0.4 + 0.15 * ((7 * k) % 5) for k in range(1, 12)]
WORD_ONSETS = (0.3, 1.1, 2.0)


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Noise carrying 4-Hz "syllables" with pauses: a speech-like amplitude envelope."""
    n = int(seconds * WAV_SR)
    env = np.zeros(n)
    t = 0.05
    while t < seconds - 0.2:
        dur = rng.uniform(0.1, 0.25)
        i0, i1 = int(t * WAV_SR), int((t + dur) * WAV_SR)
        env[i0:i1] = rng.uniform(0.3, 1.0) * np.hanning(i1 - i0)
        t += dur + (rng.uniform(0.3, 0.6) if rng.random() < 0.15 else rng.uniform(0.02, 0.1))
    return 0.3 * env * rng.standard_normal(n)


def seg_starts(first: float) -> np.ndarray:
    return first + np.concatenate([[0.0], np.cumsum(INTERVALS)])


def write_subject(
    root: Path,
    label: str,
    *,
    first: float,
    shifted: bool,
    wavs: dict,
    length_s: float | None = None,
    sfreq: float = EEG_SF,
) -> None:
    """BrainVision with the real sub-001 channel set; Aux5 carries the segments placed at ``seg_starts(first)``."""
    starts = seg_starts(first)
    length_s = length_s or float(starts[-1] + SEG_S[-1] + 1.0)
    n = round(length_s * sfreq)
    times = np.arange(n) / sfreq
    rng = np.random.default_rng(int(label))
    aux = np.zeros(n)
    lowpass = butter(6, 200.0, fs=WAV_SR, output="sos")  # an amplifier's anti-alias filter, not our code's
    for k in range(1, N_SEGMENTS + 1):
        y = sosfiltfilt(lowpass, wavs[k])
        t = starts[k - 1] + np.arange(len(y)) / WAV_SR
        aux += np.interp(times, t, y, left=0.0, right=0.0)
    aux = aux / aux.std() + 0.2 * rng.standard_normal(n) + 3.0 + np.sin(2 * np.pi * 0.1 * times)
    ch = pd.read_csv(SUB001 / "sub-001_task-alicelistening_channels.tsv", sep="\t", dtype={"name": str})
    names = ch["name"].tolist()
    data = rng.standard_normal((len(names), n)) * 1e-5
    data[names.index("Aux5")] = aux * 1e-4
    eeg = root / f"sub-{label}" / "eeg"
    eeg.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{label}_task-{TASK}"
    pybv.write_brainvision(
        data=data,
        sfreq=sfreq,
        ch_names=names,
        fname_base=f"{stem}_eeg",
        folder_out=eeg,
        unit="µV",
        overwrite=True,
    )
    for src, dst in [("channels.tsv", "channels.tsv"), ("eeg.json", "eeg.json")]:
        shutil.copy(SUB001 / f"sub-001_task-{TASK}_{src}", eeg / f"{stem}_{dst}")
    for suffix in ("electrodes.tsv", "coordsystem.json"):
        shutil.copy(SUB001 / f"sub-001_space-CapTrak_{suffix}", eeg / f"sub-{label}_space-CapTrak_{suffix}")
    meta = json.loads((eeg / f"{stem}_eeg.json").read_text())
    meta["RecordingDuration"] = (n - 1) / EEG_SF
    (eeg / f"{stem}_eeg.json").write_text(json.dumps(meta, indent=2))
    # events as nm000180 built them: label k at trigger k with segment k's CSV words; a subject whose
    # first trigger was missed has its labels 1…11 at the triggers of segments 2…12
    rows = []
    for label_k in range(1, N_SEGMENTS + (0 if shifted else 1)):
        trigger = starts[label_k] if shifted else starts[label_k - 1]
        for j, w_on in enumerate(WORD_ONSETS):
            order = 3 * (label_k - 1) + j + 1
            rows.append(
                dict(
                    onset=round(trigger + w_on, 6),
                    duration=0.5,
                    trial_type="word",
                    word=f"w{order}",
                    stim_file=stim_file_for_segment(label_k),
                    word_index=order,
                    sentence_id=label_k,
                    position_in_sentence=j + 1,
                    segment=label_k,
                )
            )
    pd.DataFrame(rows).to_csv(eeg / f"{stem}_events.tsv", sep="\t", index=False)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("alice_synth") / "nm000180"
    root.mkdir()
    for name in (
        "dataset_description.json",
        "participants.tsv",
        "participants.json",
        "README.md",
        "task-alicelistening_events.json",
    ):
        shutil.copy(DATA / name, root / name)
    (root / "sourcedata").mkdir()
    rows = []
    for k in range(1, N_SEGMENTS + 1):
        for j, w_on in enumerate(WORD_ONSETS):
            order = 3 * (k - 1) + j + 1
            rows.append(
                dict(
                    Word=f"w{order}",
                    Trigger=1,
                    Segment=k,
                    onset=w_on,
                    offset=w_on + 0.5,
                    Order=order,
                    Sentence=k,
                    Position=j + 1,
                )
            )
    pd.DataFrame(rows).to_csv(
        root / "sourcedata" / "AliceChapterOne-EEG.csv", index=False, lineterminator="\r\n"
    )
    (root / "stimuli").mkdir()
    rng = np.random.default_rng(11)
    wavs = {}
    for k in range(1, N_SEGMENTS + 1):
        wavs[k] = speech_like(SEG_S[k - 1], rng)
        sf.write(root / "stimuli" / stim_file_for_segment(k), wavs[k], WAV_SR, subtype="PCM_16")
    write_subject(root, "001", first=2.0, shifted=False, wavs=wavs)
    write_subject(root, "002", first=-1.0, shifted=True, wavs=wavs)  # recording began 1 s into segment 1
    return root


def synth_adapter(root: Path, **kw) -> AliceDataset:
    kw.setdefault("reference_intervals_s", INTERVALS)
    return AliceDataset(bids_root=root, subjects=kw.pop("subjects", ["001", "002"]), **kw)


def test_normalized_xcorr_matches_pearson():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal(300), rng.standard_normal(40)
    r = normalized_xcorr(x, t)
    ref = [np.corrcoef(x[i : i + 40], t)[0, 1] for i in range(len(x) - 39)]
    np.testing.assert_allclose(r, ref, atol=1e-10)
    assert np.isnan(normalized_xcorr(np.ones(50), t)).all()  # flat signal: undefined, not 0


def test_audio_finds_true_segment_onsets(synth):
    ad = synth_adapter(synth, audio_check=True)
    found = ad.audio_onsets("001")
    np.testing.assert_allclose(found["eeg_onset_s"], seg_starts(2.0), atol=0.03)
    assert (found["peak_corr"] > 0.8).all()
    shifted = ad.audio_onsets("002").set_index("segment")
    np.testing.assert_allclose(shifted.loc[2:, "eeg_onset_s"], seg_starts(-1.0)[1:], atol=0.03)
    # segment 1 began before this recording: its best lag is not distinct, so it is not placed
    assert np.isnan(shifted.loc[1, "eeg_onset_s"])
    assert (shifted.loc[2:, "peak_corr"] - shifted.loc[2:, "second_corr"] > 0.3).all()
    # the envelope is taken identically for the wav (after the EEG rate) and for the channel
    env = audio_envelope(np.ones(WAV_SR), WAV_SR, band_sfreq=EEG_SF)
    assert len(env) == 100


def test_audio_and_intervals_flag_the_planted_shift(synth):
    ad = synth_adapter(synth, audio_check=True)
    dec = ad.segment_decisions().set_index("subject")
    assert dec.loc["001", ["interval_shift", "audio_shift", "shift", "action"]].tolist() == [0, 0, 0, "keep"]
    assert dec.loc["002", ["interval_shift", "audio_shift", "shift", "action"]].tolist() == [
        1,
        1,
        1,
        "relabel",
    ]
    assert dec.loc["002", "audio_n_matched"] == 11 and dec.loc["002", "audio_max_dev_s"] < 0.03
    onsets = ad.stim_onsets(rec("002"))
    assert onsets["segment"].tolist() == list(range(2, 13))
    np.testing.assert_allclose(onsets["eeg_onset_s"], seg_starts(-1.0)[1:], atol=1e-4)
    np.testing.assert_allclose(ad.stim_onsets(rec("001"))["eeg_onset_s"], seg_starts(2.0), atol=1e-4)
    assert ad.subjects() == ["001", "002"]
    assert synth_adapter(synth, audio_check=True, shift_policy="exclude").subjects() == ["001"]


def test_audio_alone_decides_when_intervals_do_not_fit(synth):
    # with the real dataset's intervals the synthetic pattern fits no shift; the audio still places it
    ad = synth_adapter(synth, audio_check=True, reference_intervals_s=REFERENCE_INTERVALS_S)
    dec = ad.segment_decisions().set_index("subject")
    assert dec["interval_shift"].isna().all()
    assert dec.loc["002", "action"] == "relabel" and "Aux5 audio" in dec.loc["002", "reason"]
    blind = synth_adapter(synth, reference_intervals_s=REFERENCE_INTERVALS_S)
    assert blind.subjects() == []
    assert blind.segment_decisions()["reason"].str.contains("match neither").all()


def test_read_raw_and_span(synth, tmp_path):
    ad = synth_adapter(synth)
    raw = ad.read_raw(rec("001"))
    assert raw.info["sfreq"] == EEG_SF and raw.info["line_freq"] == 60.0
    assert raw.ch_names == [*SCALP_CHANNELS, "VEOG", "Aux5"]
    assert raw.get_channel_types(picks=["VEOG", "Aux5"]) == ["eog", "misc"]
    assert raw.info["bads"] == [] == ad.dataset_bads(rec("001"))
    pos = raw.get_montage().get_positions()["ch_pos"]
    assert set(SCALP_CHANNELS) <= set(pos) and all(np.isfinite(pos[c]).all() for c in SCALP_CHANNELS)
    root = Path(shutil.copytree(synth, tmp_path / "nm000180"))
    wavs = {k: sf.read(root / "stimuli" / stim_file_for_segment(k))[0] for k in range(1, 13)}
    cut = float(seg_starts(2.0)[-1] + 1.0)  # ends before segment 12's last word
    write_subject(root, "003", first=2.0, shifted=False, wavs=wavs, length_s=cut)
    short = synth_adapter(root, subjects=["003"])
    with pytest.raises(
        DatasetError, match=r"sub-003_task-alicelistening_eeg\.vhdr: recording lasts .* segment 12"
    ):
        short.read_raw(rec("003"))


def test_malformed_alice_inputs(synth, tmp_path):
    root = Path(shutil.copytree(synth, tmp_path / "nm000180"))
    wavs = {k: sf.read(root / "stimuli" / stim_file_for_segment(k))[0] for k in range(1, 13)}
    ad = synth_adapter(root)
    assert ad.check_stimuli()["duration_s"].round(1).tolist() == [round(s, 1) for s in SEG_S]
    sf.write(root / "stimuli" / stim_file_for_segment(12), wavs[12][:WAV_SR], WAV_SR)
    with pytest.raises(
        DatasetError, match=r"SoundFile12\.wav: lasts 1\.000 s but its last word ends at 2\.500 s"
    ):
        ad.check_stimuli()
    write_subject(root, "001", first=2.0, shifted=False, wavs=wavs, sfreq=250.0)
    with pytest.raises(DatasetError, match=r"sub-001_task-alicelistening_eeg\.vhdr: sampling rate 250 Hz"):
        ad.read_raw(rec("001"))
    (root / "sub-002" / "eeg" / "sub-002_task-alicelistening_channels.tsv").unlink()
    with pytest.raises(DatasetError, match=r"sub-002_task-alicelistening_channels\.tsv: channels sidecar"):
        ad.read_raw(rec("002"))
    with pytest.raises(DatasetError, match="not an Alice stimulus name"):
        ad.stimulus_path("audio01.wav")


def test_committed_decisions_resource(meta_root):
    path = Path(__file__).parents[1] / "resources" / "alice" / "segment_decisions.tsv"
    ad = AliceDataset(bids_root=meta_root, decisions_file=path)
    assert len(ad.subjects()) == 31
    dec = ad.segment_decisions()
    assert sorted(dec.loc[dec["action"] == "relabel", "subject"]) == list(SHIFTED_USE)
    assert ad.stim_onsets(rec("034"))["segment"].tolist() == list(range(2, 13))
