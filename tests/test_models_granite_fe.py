"""The torch-only Granite log-mel drop-in against independent references."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hearlike.models.granite_fe import (  # noqa: E402
    TorchGraniteSpeechFeatureExtractor,
    TorchMelSpectrogram,
    mel_filterbank,
)
from hearlike.models.tiny import speechlike_audio  # noqa: E402


def test_filterbank_matches_transformers_htk() -> None:
    from transformers.audio_utils import mel_filter_bank

    ours = mel_filterbank(n_freqs=257, n_mels=80, sample_rate=16000).numpy()
    ref = mel_filter_bank(num_frequency_bins=257, num_mel_filters=80, min_frequency=0.0, max_frequency=8000.0,
                          sampling_rate=16000, norm=None, mel_scale="htk")
    np.testing.assert_allclose(ours, ref, atol=1e-5)  # float32 vs float64


def test_mel_spectrogram_matches_numpy_stft() -> None:
    x = speechlike_audio(0.7, seed=5)
    n_fft, win, hop = 512, 400, 160
    mel = TorchMelSpectrogram(sample_rate=16000, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=80)
    ours = mel(torch.from_numpy(x)).numpy()
    # Reference: centred reflect-padded frames, periodic Hann of win_length zero-padded into n_fft, |rfft|².
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + len(x) // hop
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    window = np.zeros(n_fft)
    window[(n_fft - win) // 2:(n_fft - win) // 2 + win] = hann
    frames = np.stack([padded[i * hop:i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    ref = (power @ mel.fb.numpy().astype(np.float64)).T
    assert ours.shape == ref.shape == (80, n_frames)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-6 * ref.max())


def test_feature_extractor_shapes_and_serialisation() -> None:
    fe = TorchGraniteSpeechFeatureExtractor()
    x = speechlike_audio(2.0, seed=1)
    out = fe([torch.from_numpy(x), torch.from_numpy(x[:16000])])
    feats = out["input_features"]
    assert feats.shape == (2, 100, 160)  # 201 mel frames → 200 → 100 stacked pairs of 80 mels
    assert out["audio_embed_sizes"] == [21, 12]  # ceil(100/15)*3, ceil(50/15)*3
    for f in feats:  # per clip: log10 floor at (max - 8), then /4 + 1 → range at most 2
        assert float(f.max() - f.min()) <= 2.0 + 1e-5
    d = fe.to_dict()
    assert d["feature_extractor_type"] == "GraniteSpeechFeatureExtractor" and "mel_filters" not in d
