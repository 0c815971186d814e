"""Test double of ``whisper.audio``: 30 s chunks, 10 ms hop, log-mel as openai-whisper documents it.

Mel: periodic Hann STFT (n_fft 400, hop 160, centred), power spectrum without the last frame, Slaney mel
filters (librosa's default, here from ``transformers.audio_utils``), log10 floored at 1e-10, floored again at
max - 8, then ``(x + 4) / 4``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE
N_FRAMES = N_SAMPLES // HOP_LENGTH


def pad_or_trim(array, length: int = N_SAMPLES, *, axis: int = -1):
    """Zero-pad or cut ``array`` to ``length`` samples along ``axis`` (numpy or torch)."""
    n = array.shape[axis]
    if torch.is_tensor(array):
        if n > length:
            array = array.narrow(axis, 0, length)
        elif n < length:
            pad = [0, 0] * array.ndim
            pad[2 * (array.ndim - 1 - (axis % array.ndim)) + 1] = length - n
            array = F.pad(array, pad)
        return array
    if n > length:
        array = np.take(array, np.arange(length), axis=axis)
    elif n < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - n)
        array = np.pad(array, widths)
    return array


@cache
def _filters(n_mels: int) -> np.ndarray:
    from transformers.audio_utils import mel_filter_bank

    fb = mel_filter_bank(num_frequency_bins=1 + N_FFT // 2, num_mel_filters=n_mels, min_frequency=0.0,
                         max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")
    return np.ascontiguousarray(fb.T.astype(np.float32))


def log_mel_spectrogram(audio, n_mels: int = 80, padding: int = 0, device=None) -> torch.Tensor:
    """``[n_mels, n_frames]`` log-mel of a 16 kHz waveform (numpy or torch)."""
    x = audio if torch.is_tensor(audio) else torch.from_numpy(np.asarray(audio, dtype=np.float32))
    if device is not None:
        x = x.to(device)
    if padding > 0:
        x = F.pad(x, (0, padding))
    spec = torch.stft(x, N_FFT, HOP_LENGTH, window=torch.hann_window(N_FFT, device=x.device), return_complex=True)
    power = spec[..., :-1].abs() ** 2
    mel = torch.from_numpy(_filters(n_mels)).to(x.device) @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0
