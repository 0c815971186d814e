"""Test stand-in for ``Codec/models/codec.py`` of OpenMOSS/SpeechGPT-2.0-preview (hearlike tests only).

Not the real codec: a tiny causal tokenizer with the real ``Generator`` interface (constructor keyword
groups of ``Codec/config/sg2_codec_config.yaml``, ``load_from_checkpoint(config_path, checkpoint_path)``,
``inference_tokenize(x[B, 1, n]) -> [n_vq, B, t]``, attributes ``sampling_rate``, ``mel_downsample_factor``,
``total_downsample_factor``) and the real frame arithmetic of the encode path at commit 730c90f: causal
log-mel (left replicate pad ``win - hop``, ``center=False``, output cut to ``n // hop`` frames, 100 Hz at
24 kHz), length-preserving causal encoder, two causal stride-2 kernel-4 downsamplers that pad to
``ceil(n / 2)`` frames (moshi style: left pad ``kernel - stride``, right pad to complete the last window),
then a residual VQ with ``codebook_num`` codebooks of ``codebook_size`` codes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn


class _CausalLogMel(nn.Module):
    def __init__(self, fs: int, fft_size: int, hop_size: int, win_length: int | None, num_mels: int,
                 eps: float = 1e-10, **_: Any) -> None:
        super().__init__()
        self.fft_size, self.hop_size = fft_size, hop_size
        self.win_length = win_length or fft_size
        self.eps = eps
        self.pad_length = self.win_length - hop_size
        self.register_buffer("window", torch.hann_window(self.win_length))
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("melmat", torch.rand(fft_size // 2 + 1, num_mels, generator=gen) / fft_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, x.shape[-1])
        x = F.pad(x, (self.pad_length, 0), mode="replicate")[:, 0]
        spec = torch.stft(x, self.fft_size, self.hop_size, self.win_length, self.window, center=False,
                          return_complex=True)
        amp = spec.abs().clamp(min=self.eps).transpose(1, 2)  # [B, frames, bins]
        return torch.log((amp @ self.melmat).clamp(min=self.eps)).transpose(1, 2)  # [B, mels, frames]


class _CausalConv(nn.Module):
    """Stride-1 conv with left zero padding: frame count unchanged."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.pad = kernel - 1
        self.conv = nn.Conv1d(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(F.pad(x, (self.pad, 0))))


class _CausalDownsample(nn.Module):
    """Kernel 2*stride, stride ``stride``; replicate padding left (kernel - stride) and right to a full window."""

    def __init__(self, stride: int, dimension: int, **_: Any) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(dimension, dimension, 2 * stride, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        right = math.ceil(n / self.stride) * self.stride - n
        return self.conv(F.pad(x, (self.stride, right), mode="replicate"))


class _ResidualVQ(nn.Module):
    def __init__(self, codebook_num: int, codebook_size: int, code_dim: int, **_: Any) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.randn(codebook_num, codebook_size, code_dim))

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        residual = z.transpose(1, 2)  # [B, t, d]
        out = []
        for book in self.embed:
            idx = torch.cdist(residual, book[None].expand(residual.shape[0], -1, -1)).argmin(-1)
            residual = residual - book[idx]
            out.append(idx)
        return torch.stack(out)  # [n_vq, B, t]


class _Quantizer(nn.Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.codebook = _ResidualVQ(**kwargs)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return self.codebook.encode(z)


class Generator(nn.Module):
    """Tiny causal RVQ speech tokenizer with the real Generator's encode interface."""

    def __init__(self, mel_kwargs: dict, encoder_convnext_kwargs: dict, encoder_transformer_kwargs: dict,
                 encoder_extra_down_sample_kwargs: dict, quantizer_type: str, quantizer_kwargs: dict,
                 post_projecter_kwargs: dict, vq_transformer_kwargs: dict,
                 post_projecter_of_vq_transformer_kwargs: dict, decoder_extra_up_sample_kwargs: dict,
                 decoder_transformer_kwargs: dict, decoder_convnext_kwargs: dict, decoder_hifigan_kwargs: dict,
                 mode: str, use_weight_norm: bool) -> None:
        super().__init__()
        if mode != "causal" or quantizer_type != "residual_vq":
            raise ValueError("stand-in supports mode causal / residual_vq only")
        self.mode = mode
        self.input_channels = 1
        self.sampling_rate = mel_kwargs["fs"]
        self.codebook_size = quantizer_kwargs["codebook_size"]
        self.code_dim = quantizer_kwargs["code_dim"]
        self.mel_downsample_factor = mel_kwargs["hop_size"]
        self.total_downsample_factor = 960
        stride = encoder_extra_down_sample_kwargs["stride"]
        if self.mel_downsample_factor * stride * stride != self.total_downsample_factor:
            raise ValueError("hop_size * stride**2 must be 960")
        dim = encoder_extra_down_sample_kwargs["dimension"]
        self.mel_transform = _CausalLogMel(**mel_kwargs)
        self.encoder_convnext = _CausalConv(encoder_convnext_kwargs["input_channels"], dim,
                                            encoder_convnext_kwargs["kernel_size"])
        self.encoder_transformer = _CausalConv(dim, dim, 1)
        self.encoder_extra_down_sample_1 = _CausalDownsample(**encoder_extra_down_sample_kwargs)
        self.encoder_extra_down_sample_2 = _CausalDownsample(**encoder_extra_down_sample_kwargs)
        self.quantizer = _Quantizer(**quantizer_kwargs)

    def inference_tokenize(self, x: torch.Tensor) -> torch.Tensor:
        _b, c, n = x.shape
        if c != self.input_channels:
            x = x.reshape(-1, self.input_channels, n)
        m = self.mel_transform(x)[:, :, :n // self.mel_downsample_factor]
        h = self.encoder_transformer(self.encoder_convnext(m))
        h = self.encoder_extra_down_sample_2(self.encoder_extra_down_sample_1(h))
        return self.quantizer.encode(h)

    @classmethod
    def load_from_checkpoint(cls, config_path: str, checkpoint_path: str) -> Generator:
        with open(config_path) as f:
            cfg = yaml.safe_load(f)
        codec = cls(**cfg["generator_params"])
        codec.load_state_dict(torch.load(checkpoint_path, map_location="cpu"), strict=True)
        return codec
