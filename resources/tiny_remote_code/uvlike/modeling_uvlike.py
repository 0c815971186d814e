"""Modeling code of the tiny Ultravox-like test model (project-written; see README.md).

Audio path: log-mel → Whisper-style conv front end (stride 2, 50 Hz) → Whisper encoder layers with a
padding mask (variable length, no 30 s padding) → stack ``stack_factor`` frames → SwiGLU projector →
written over the audio placeholder span ``[audio_token_start_idx, +audio_token_len)`` of the LM input.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedModel
from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

from .configuration_uvlike import UVLikeConfig


class UVLikeAudioEncoder(nn.Module):
    """Whisper-style encoder that accepts any length up to ``max_source_positions`` frames."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        if getattr(config, "_attn_implementation", None) is None:
            config._attn_implementation = "eager"  # the layers dispatch attention on this config field
        d = config.d_model
        self.conv1 = nn.Conv1d(config.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, d)
        self.layers = nn.ModuleList([WhisperEncoderLayer(config) for _ in range(config.encoder_layers)])
        self.layer_norm = nn.LayerNorm(d)

    @staticmethod
    def output_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames per clip for ``mel_lengths`` valid mel frames."""
        return (mel_lengths - 1) // 2 + 1

    def forward(self, input_features: torch.Tensor, audio_lens: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.conv1(input_features))
        x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)
        n = x.shape[1]
        x = x + self.embed_positions.weight[:n].to(x.dtype)
        valid = torch.arange(n, device=x.device)[None, :] < self.output_lengths(audio_lens)[:, None]
        mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~valid, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return self.layer_norm(x)


class UVLikeProjector(nn.Module):
    """Stack ``k`` consecutive frames, then LayerNorm → Linear → SwiGLU → Linear."""

    def __init__(self, config: UVLikeConfig) -> None:
        super().__init__()
        self.k = config.stack_factor
        d_in = config.audio_config.d_model * self.k
        h = config.projector_hidden
        self.ln = nn.LayerNorm(d_in)
        self.linear_1 = nn.Linear(d_in, 2 * h, bias=False)
        self.linear_2 = nn.Linear(h, config.text_config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        pad = (-t) % self.k
        x = nn.functional.pad(x, (0, 0, 0, pad)).reshape(b, (t + pad) // self.k, d * self.k)
        a, g = self.linear_1(self.ln(x)).chunk(2, dim=-1)
        return self.linear_2(nn.functional.silu(g) * a)


class UVLikePreTrainedModel(PreTrainedModel):
    config_class = UVLikeConfig
    base_model_prefix = "uvlike"
    _no_split_modules: ClassVar[list[str]] = ["WhisperEncoderLayer", "LlamaDecoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear | nn.Conv1d):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)


class UVLikeModel(UVLikePreTrainedModel):
    """Audio encoder + projector + Llama LM; ``forward`` returns the LM's output."""

    def __init__(self, config: UVLikeConfig) -> None:
        super().__init__(config)
        self.audio_tower = UVLikeAudioEncoder(config.audio_config)
        self.multi_modal_projector = UVLikeProjector(config)
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                audio_values: torch.Tensor | None = None, audio_lens: torch.Tensor | None = None,
                audio_token_start_idx: torch.Tensor | None = None, audio_token_len: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        embeds = self.language_model.get_input_embeddings()(input_ids)
        if audio_values is not None:
            feats = self.audio_tower(audio_values.to(embeds.dtype), audio_lens)
            audio_embeds = self.multi_modal_projector(feats).to(embeds.dtype)
            rows = []
            for i in range(embeds.shape[0]):
                s, n = int(audio_token_start_idx[i]), int(audio_token_len[i])
                rows.append(torch.cat([embeds[i, :s], audio_embeds[i, :n], embeds[i, s + n:]], dim=0))
            embeds = torch.stack(rows)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)
