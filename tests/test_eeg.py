"""Bad-channel detection, preprocessing and sentence segmentation on small synthetic recordings."""

import mne
import numpy as np
import pandas as pd
import pytest

from hearlike.datasets.base import DatasetError
from hearlike.eeg import detect_bad_channels, preprocess_improved
from hearlike.sentences import sentence_table


def _smooth_raw(seed=0, sfreq=256.0, seconds=20):
    montage = mne.channels.make_standard_montage("biosemi32")
    pos = np.array([montage.get_positions()["ch_pos"][c] for c in montage.ch_names])
    rng = np.random.default_rng(seed)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    mixing = np.exp(-d2 / (2 * 0.05**2))
    data = mixing @ rng.standard_normal((32, int(sfreq * seconds))) * 1e-6
    raw = mne.io.RawArray(data, mne.create_info(montage.ch_names, sfreq, "eeg"), verbose=False)
    raw.set_montage(montage)
    return raw, pos


def test_detects_noisy_flat_and_inconsistent_channels():
    raw, pos = _smooth_raw()
    data = raw.get_data()
    rng = np.random.default_rng(3)
    data[5] = rng.standard_normal(data.shape[1]) * data.std() * 20  # noisy
    data[9] = 0.0  # flat
    data[20] = rng.standard_normal(data.shape[1]) * data[20].std()  # same variance, uncorrelated with neighbours
    found = detect_bad_channels(data, pos, z_threshold=5.0, min_correlation=0.4)
    assert set(found) == {5, 9, 20}
    assert found[9] == "flat"


def test_clean_data_has_no_bad_channels():
    raw, pos = _smooth_raw(seed=4)
    assert detect_bad_channels(raw.get_data(), pos, z_threshold=5.0, min_correlation=0.4) == {}


def test_preprocess_improved_interpolates_and_references():
    raw, _ = _smooth_raw(seed=5)
    raw._data[5] *= 50
    raw._data += 40e-6 * np.sin(2 * np.pi * 50 * raw.times)  # mains
    before = raw.compute_psd(fmin=49, fmax=51, verbose=False).get_data().max()
    info = preprocess_improved(raw, line_freq=50.0, l_freq=0.5, h_freq=40.0, notch=True, use_dataset_marks=True,
                               detect=True, z_threshold=5.0, min_correlation=0.4, interpolate=True,
                               reference="average")
    assert "C4" not in info["dataset_bads"]
    assert raw.ch_names[5] in info["detected_bads"]
    np.testing.assert_allclose(raw.get_data().mean(axis=0), 0.0, atol=1e-12)
    after = raw.compute_psd(fmin=49, fmax=51, verbose=False).get_data().max()
    assert after < before * 1e-4  # mains removed by notch + low-pass


def test_sentence_table_spans_words_and_rejects_mixed_stimuli():
    words = pd.DataFrame(dict(stim_file=["a.wav"] * 3 + ["b.wav"] * 2, word_index=range(1, 6),
                              word=["x", "y", "z", "u", "v"], onset_s=[1.0, 1.5, 2.0, 0.5, 0.9],
                              offset_s=[1.4, 1.9, 2.6, 0.8, 1.3], sentence_id=[1, 1, 2, 3, 3]))
    table = sentence_table(words)
    assert table["sentence_id"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(table["duration_s"], [0.9, 0.6, 0.8])
    assert table["run"].tolist() == ["01", "01", "02"]
    bad = words.assign(sentence_id=[1, 1, 1, 1, 1])
    with pytest.raises(DatasetError, match="spans several stimulus files"):
        sentence_table(bad)
