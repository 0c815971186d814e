"""Torch-only drop-in for ``GraniteSpeechFeatureExtractor`` (which needs torchaudio).

torchaudio has no build for torch 2.13, and transformers' Granite feature extractor builds a
``torchaudio.transforms.MelSpectrogram`` in ``__init__``. :class:`TorchGraniteSpeechFeatureExtractor`
subclasses it, skips the torchaudio check, and replaces the mel transform with
:class:`TorchMelSpectrogram`, a ``torch.stft`` re-implementation of torchaudio's ``MelSpectrogram``
defaults (periodic Hann window of ``win_length`` centred in ``n_fft``, ``center=True`` with reflect
padding, power 2, HTK mel scale, no filter-bank normalisation, ``f_min=0``, ``f_max=sr/2``).

Caveat: written from torchaudio's documented defaults; it could not be compared bit-for-bit with
torchaudio on this machine. The Granite log-mel post-processing (log10, dynamic-range clamp at
max−8, ``/4 + 1``, frame stacking ×2) is inherited unchanged from transformers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers.models.granite_speech.feature_extraction_granite_speech import GraniteSpeechFeatureExtractor


def _hz_to_mel_htk(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def _mel_to_hz_htk(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(*, n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filter bank, shape ``(n_freqs, n_mels)``, unnormalised (torchaudio ``norm=None``)."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    all_freqs = torch.linspace(0.0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_pts = torch.linspace(float(_hz_to_mel_htk(torch.tensor(f_min))), float(_hz_to_mel_htk(torch.tensor(f_max))),
                           n_mels + 2, dtype=torch.float64)
    f_pts = _mel_to_hz_htk(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0).to(torch.float32)


class TorchMelSpectrogram(torch.nn.Module):
    """Power mel spectrogram with torchaudio ``MelSpectrogram``'s defaults, computed with ``torch.stft``."""

    def __init__(self, *, sample_rate: int = 16000, n_fft: int = 400, win_length: int | None = None,
                 hop_length: int | None = None, n_mels: int = 128) -> None:
        super().__init__()
        self.n_fft = int(n_fft)
        self.win_length = int(win_length or n_fft)
        self.hop_length = int(hop_length or self.win_length // 2)
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True), persistent=False)
        self.register_buffer("fb", mel_filterbank(n_freqs=self.n_fft // 2 + 1, n_mels=n_mels,
                                                  sample_rate=sample_rate), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(..., time)`` → ``(..., n_mels, frames)``."""
        shape = waveform.shape
        x = waveform.reshape(-1, shape[-1])
        spec = torch.stft(x, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window.to(x.dtype), center=True, pad_mode="reflect",
                          normalized=False, onesided=True, return_complex=True)
        power = spec.abs().pow(2.0)  # (B, n_freqs, frames)
        mel = torch.matmul(power.transpose(-1, -2), self.fb.to(power.dtype)).transpose(-1, -2)
        return mel.reshape(*shape[:-1], mel.shape[-2], mel.shape[-1])


class TorchGraniteSpeechFeatureExtractor(GraniteSpeechFeatureExtractor):
    """``GraniteSpeechFeatureExtractor`` whose mel front end is :class:`TorchMelSpectrogram` (no torchaudio)."""

    def __init__(self, sampling_rate: int = 16000, n_fft: int = 512, win_length: int = 400,
                 hop_length: int = 160, n_mels: int = 80, projector_window_size: int = 15,
                 projector_downsample_rate: int = 5, padding_value: float = 0.0, **kwargs: Any) -> None:
        feature_size = n_mels if kwargs.get("feature_size") is None else kwargs.pop("feature_size")
        # Skip GraniteSpeechFeatureExtractor.__init__ (it hard-requires torchaudio); call its parent.
        super(GraniteSpeechFeatureExtractor, self).__init__(
            feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.sampling_rate = sampling_rate
        self.melspec_kwargs = {"sample_rate": sampling_rate, "n_fft": n_fft, "win_length": win_length,
                               "hop_length": hop_length, "n_mels": n_mels}
        self.mel_filters = TorchMelSpectrogram(**self.melspec_kwargs)
        self.projector_window_size = projector_window_size
        self.projector_downsample_rate = projector_downsample_rate

    def __call__(self, audios: Any, device: str | None = "cpu") -> Any:
        """Log-mel features as upstream, with the torch mel front end."""
        # The parent's __call__ only re-checks the torchaudio backend before doing torch work.
        import transformers.models.granite_speech.feature_extraction_granite_speech as fe_mod

        saved = fe_mod.requires_backends
        fe_mod.requires_backends = _requires_only_torch
        try:
            return super().__call__(audios, device=device)
        finally:
            fe_mod.requires_backends = saved

    def to_dict(self) -> dict[str, Any]:
        """Serialise as the upstream class so a saved processor stays loadable by stock transformers."""
        out = super().to_dict()
        out.pop("mel_filters", None)
        out["feature_extractor_type"] = "GraniteSpeechFeatureExtractor"
        return out


def _requires_only_torch(obj: Any, backends: Any) -> None:
    if isinstance(backends, str):
        backends = [backends]
    rest = [b for b in backends if b != "torchaudio"]
    if rest:
        from transformers.utils.import_utils import requires_backends

        requires_backends(obj, rest)


def expected_mel_frames(n_samples: int, hop_length: int = 160) -> int:
    """Number of centred STFT frames for ``n_samples`` (``1 + n // hop``)."""
    return 1 + math.floor(n_samples / hop_length)
