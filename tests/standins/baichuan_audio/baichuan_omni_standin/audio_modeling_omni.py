"""Stand-in for Baichuan-Audio's ``audio_modeling_omni.py`` (hearlike test double, interface only).

Reproduces the bookkeeping of the real audio tokenizer path, with simple numerics and no flash-attn:

* ``OmniAudioEncoder(audio_config).forward(input_features, output_length)``: conv1 (kernel ``kernel_size``,
  pad 1) → conv2 (stride ``stride_size``) → + sinusoidal positions → **packed** valid frames
  ``[sum(output_length), d]`` through ``layers`` (each called as ``layer(hidden, seq_len)`` and returning the
  packed tensor) → ``layer_norm`` → unpacked ``[batch, frames, d]`` with zeros past each length.
* ``OmniAudioVQBridgeTokenizer(config).forward(x, output_length)``: ``avg_pooler`` consecutive frames are
  merged by strided convolutions (frame group j = encoder frames ``[j*p, j*p + p)``), then a residual VQ
  with one codebook per ``vq_config.codebook_sizes`` entry; returns the packed code ids
  ``[sum(output_length), n_codebooks]`` (``output_length`` = bridge lengths).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def sinusoid_table(length: int, channels: int) -> torch.Tensor:
    """Whisper-style sin/cos position table ``[length, channels]``."""
    inc = math.log(10000.0) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([t.sin(), t.cos()], dim=1)


def valid_mask(batch: int, frames: int, lengths: torch.Tensor, device: Any) -> torch.Tensor:
    """``[batch, frames, 1]`` boolean mask of the valid frames."""
    return (torch.arange(frames, device=device)[None, :] < lengths.to(device)[:, None]).view(batch, frames, 1)


class PackedSelfAttention(nn.Module):
    """Bidirectional attention within each packed segment (what flash-attn varlen does in the real code)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
        n, d = x.shape
        hd = d // self.heads
        q, k, v = (p(x).view(n, self.heads, hd).transpose(0, 1) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = torch.empty_like(q)
        start = 0
        for length in seq_len.tolist():
            sl = slice(start, start + int(length))
            out[:, sl] = F.scaled_dot_product_attention(q[:, sl], k[:, sl], v[:, sl])
            start += int(length)
        return self.out_proj(out.transpose(0, 1).reshape(n, d))


class OmniWhisperTransformerLayer(nn.Module):
    """Pre-LN block on packed frames: ``forward(hidden [N, d], seq_len [B]) -> [N, d]``."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = PackedSelfAttention(d_model, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)

    def forward(self, hidden_states: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
        h = hidden_states + self.self_attn(self.self_attn_layer_norm(hidden_states), seq_len)
        return h + self.fc2(F.gelu(self.fc1(self.final_layer_norm(h))))


class OmniAudioEncoder(nn.Module):
    """Whisper-style encoder over variable-length mel windows (no 30 s padding), packed through the layers."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        n_pos = (config.max_audio_seconds * config.sampling_rate // config.hop_length) // config.stride_size
        self.conv1 = nn.Conv1d(config.num_mel_bins, config.d_model, kernel_size=config.kernel_size, padding=1)
        self.conv2 = nn.Conv1d(config.d_model, config.d_model, kernel_size=config.kernel_size,
                               stride=config.stride_size, padding=1)
        self.register_buffer("positional_embedding", sinusoid_table(n_pos, config.d_model))
        self.layers = nn.ModuleList([
            OmniWhisperTransformerLayer(config.d_model, config.encoder_attention_heads, config.encoder_ffn_dim)
            for _ in range(config.encoder_layers)])
        self.layer_norm = nn.LayerNorm(config.d_model)

    def forward(self, input_features: torch.Tensor, output_length: torch.Tensor) -> torch.Tensor:
        x = input_features.to(self.conv1.weight.dtype)
        x = F.gelu(self.conv2(F.gelu(self.conv1(x)))).permute(0, 2, 1)
        bsz, frames, d = x.shape
        x = x + self.positional_embedding[:frames].to(x.dtype)
        mask = valid_mask(bsz, frames, output_length, x.device)
        h = torch.masked_select(x, mask).view(-1, d)  # packed: window 0's frames, then window 1's, ...
        for layer in self.layers:
            h = layer(h, output_length)
        h = self.layer_norm(h)
        out = torch.zeros(bsz, frames, d, dtype=h.dtype, device=h.device)
        out.masked_scatter_(mask.expand(-1, -1, d), h)
        return out


class ResidualCodebook(nn.Module):
    """One VQ stage: nearest codeword (squared L2) and its vector."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.randn(size, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.cdist(x.float(), self.embed.float()).argmin(-1)
        return self.embed[idx].to(x.dtype), idx


class OmniAudioVQBridgeTokenizer(nn.Module):
    """×``avg_pooler`` frame merge + residual VQ → packed code ids ``[sum(bridge_length), n_codebooks]``."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config.audio_config
        p, d = self.config.avg_pooler, self.config.d_model
        self.intermediate_dim = d * p
        self.gate_proj = nn.Conv1d(d, self.intermediate_dim, p, p, bias=False)
        self.up_proj = nn.Conv1d(d, self.intermediate_dim, p, p, bias=False)
        self.down_proj = nn.Linear(self.intermediate_dim, self.intermediate_dim, bias=False)
        self.layer_norm = nn.LayerNorm(self.intermediate_dim)
        self.vq_list = nn.ModuleList([ResidualCodebook(int(s), self.intermediate_dim)
                                      for s in self.config.vq_config.codebook_sizes])

    def forward(self, x: torch.Tensor, output_length: torch.Tensor) -> torch.Tensor:
        p = self.config.avg_pooler
        bsz = x.shape[0]
        if x.shape[1] % p:
            x = F.pad(x, (0, 0, 0, p - x.shape[1] % p))
        xt = x.permute(0, 2, 1)
        g, u = self.gate_proj(xt).permute(0, 2, 1), self.up_proj(xt).permute(0, 2, 1)
        res = self.layer_norm(self.down_proj(F.silu(g) * u) + x.reshape(bsz, -1, self.intermediate_dim))
        codes, resid = [], res
        for vq in self.vq_list:
            q, idx = vq(resid)
            resid = resid - q
            codes.append(idx)
        ids = torch.stack(codes, -1)
        keep = valid_mask(bsz, ids.shape[1], output_length, ids.device)
        return torch.masked_select(ids, keep).view(-1, len(self.vq_list))
