"""Stand-in for MiniCPM-o-2.6's ``modeling_minicpmo.py`` (project-written; see README.md).

Audio path of the real model, kept step for step: trimmed log-mel rows (one per ≤ 30 s piece, padded to the
longest) → Whisper-style encoder ``apm`` (conv stride 2 → 50 Hz, additive mask = padding mask built by comparing
*mel* lengths with encoder positions, OR-ed with a block-causal 1 s chunk mask) → ``hidden_states[-1]``
(final LayerNorm) → ``audio_projection_layer`` → ``audio_avg_pooler`` (×``audio_pool_step``, 25 Hz) → first
``(cnn - step) // step + 1`` tokens per piece → with ``config.chunk_input`` all pieces of a sample concatenated
and written in order over the ``audio_bounds`` spans of the LM input embeddings → ``llm(inputs_embeds=...)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Qwen2ForCausalLM, Qwen2PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast

from .configuration_minicpm import MiniCPMOConfig


class MiniCPMWhisperEncoderLayer(nn.Module):
    """Pre-LN Whisper block taking an additive 4-D mask; returns a 1-tuple like the real layer."""

    def __init__(self, config: Any, layer_idx: int | None = None) -> None:
        super().__init__()
        d = config.d_model
        self.n_heads = config.encoder_attention_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                layer_head_mask: torch.Tensor | None = None, output_attentions: bool = False,
                past_key_values: Any = None, use_cache: bool | None = False) -> tuple[torch.Tensor]:
        b, t, d = hidden_states.shape
        h = self.self_attn_layer_norm(hidden_states)

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

        att = nn.functional.scaled_dot_product_attention(heads(self.q_proj(h)), heads(self.k_proj(h)),
                                                         heads(self.v_proj(h)), attn_mask=attention_mask)
        hidden_states = hidden_states + self.out_proj(att.transpose(1, 2).reshape(b, t, d))
        h = self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(hidden_states))))
        return (hidden_states + h,)


class MiniCPMWhisperEncoder(nn.Module):
    """Whisper encoder over any length ≤ ``max_source_positions`` frames (positions sliced, not padded to 30 s)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.conv1 = nn.Conv1d(config.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, d)
        self.layers = nn.ModuleList([MiniCPMWhisperEncoderLayer(config, i) for i in range(config.encoder_layers)])
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None,
                head_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                past_key_values: Any = None, use_cache: bool | None = None) -> BaseModelOutputWithPast:
        x = input_features.to(dtype=self.conv1.weight.dtype, device=self.conv1.weight.device)
        x = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(x)))).permute(0, 2, 1)
        hidden = x + self.embed_positions.weight[: x.shape[1]]
        states: tuple[torch.Tensor, ...] = ()
        for layer in self.layers:
            if output_hidden_states:
                states += (hidden,)  # input of each block (block outputs 1..L-1 after the first)
            hidden = layer(hidden, attention_mask, layer_head_mask=None, output_attentions=False,
                           past_key_values=None, use_cache=False)[0]
        hidden = self.layer_norm(hidden)
        if output_hidden_states:
            states += (hidden,)  # last entry: LayerNorm(block L), what MiniCPM-o feeds the projector
        return BaseModelOutputWithPast(last_hidden_state=hidden, hidden_states=states if output_hidden_states else None)


class MultiModalProjector(nn.Module):
    """Linear → ReLU → Linear."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_dim, out_dim)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(out_dim, out_dim)

    def forward(self, audio_features: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.relu(self.linear1(audio_features)))


class MiniCPMOPreTrainedModel(Qwen2PreTrainedModel):
    config_class = MiniCPMOConfig


class MiniCPMO(MiniCPMOPreTrainedModel):
    """LM ``llm`` + audio tower ``apm``; vision and TTS parts are not part of the stand-in."""

    def __init__(self, config: MiniCPMOConfig) -> None:
        super().__init__(config)
        self.llm = Qwen2ForCausalLM(config)
        self.embed_dim = self.llm.config.hidden_size
        if config.init_vision or config.init_tts:
            raise NotImplementedError("stand-in: load with init_vision=False, init_tts=False")
        if config.init_audio:
            self.apm = MiniCPMWhisperEncoder(config.audio_config)
            self.audio_avg_pooler = nn.AvgPool1d(config.audio_pool_step, stride=config.audio_pool_step)
            self.audio_projection_layer = MultiModalProjector(int(self.apm.config.encoder_ffn_dim // 4), self.embed_dim)
            self.audio_encoder_layer = -1
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.llm.get_input_embeddings()

    def subsequent_chunk_mask(self, size: int, chunk_size: int, num_left_chunks: int = -1,
                              device: torch.device | str = "cpu", num_lookhead: int = 0) -> torch.Tensor:
        """True where query i may attend key j: all earlier chunks (num_left_chunks < 0) and its own chunk."""
        idx = torch.arange(size, device=device)
        chunk_end = torch.clamp((idx // chunk_size + 1) * chunk_size + num_lookhead, max=size)
        visible = idx[None, :] < chunk_end[:, None]
        if num_left_chunks >= 0:
            start = torch.clamp((idx // chunk_size - num_left_chunks) * chunk_size, min=0)
            visible &= idx[None, :] >= start[:, None]
        return visible

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder frames, audio tokens) for ``input_lengths`` mel frames."""
        after_cnn = (input_lengths - 1) // 2 + 1
        step = self.config.audio_pool_step
        after_pool = ((after_cnn - step) // step + 1).to(torch.int32)
        return after_cnn, after_pool

    def get_vllm_embedding(self, data: dict[str, Any]) -> tuple[torch.Tensor, list[Any]]:
        """Token embeddings; no image features in the stand-in (data carries empty pixel_values)."""
        if any(len(p) for p in data.get("pixel_values", [])):
            raise NotImplementedError("stand-in has no vision tower")
        emb = self.llm.model.embed_tokens(data["input_ids"])
        return emb, [[] for _ in range(len(data["input_ids"]))]

    def get_audio_embedding(self, data: dict[str, Any], chunk_length: float = -1, dummy: bool = True) -> list[list[torch.Tensor]]:
        """Per sample, per ≤ 30 s piece: the pooled, projected audio tokens (the real model's bookkeeping)."""
        feats = data.get("audio_features", [])
        lens_raw = data.get("audio_feature_lens", [])
        if len(feats) == 0:
            return []
        lens = torch.hstack(list(lens_raw))
        n_rows, _, n_mel = feats.shape
        n_enc = (n_mel - 1) // 2 + 1
        # As in the real code: encoder positions are compared with *mel* lengths (not encoder lengths).
        pad = torch.arange(n_enc, device=lens.device)[None, :] >= lens[:, None]
        blocked = pad[:, None, None, :].expand(n_rows, 1, n_enc, n_enc)
        if chunk_length > 0:
            chunk = self.subsequent_chunk_mask(n_enc, int(chunk_length * 50), device=blocked.device)
            blocked = blocked | ~chunk
        mask = torch.zeros(blocked.shape, dtype=self.apm.conv1.weight.dtype, device=self.apm.conv1.weight.device)
        mask[blocked.to(mask.device)] = float("-inf")
        states = self.apm(feats, output_hidden_states=True, attention_mask=mask).hidden_states[self.audio_encoder_layer]
        emb = self.audio_avg_pooler(self.audio_projection_layer(states).transpose(1, 2)).transpose(1, 2)
        _, n_tok = self._get_feat_extract_output_lengths(lens)
        out, row = [], 0
        for sample_lens in lens_raw:
            pieces = []
            for _ in range(len(sample_lens)):
                pieces.append(emb[row, : int(n_tok[row])])
                row += 1
            out.append(pieces)
        return out

    def get_omni_embedding(self, data: dict[str, Any], input_embeddings: torch.Tensor, chunk_length: float = -1,
                           stream_input: bool = False) -> torch.Tensor:
        """Write each sample's audio tokens over its ``audio_bounds`` spans, in order."""
        if stream_input:
            raise NotImplementedError("stand-in has no streaming path")
        audio = self.get_audio_embedding(data, chunk_length)
        if len(data.get("audio_features", [])) == 0:
            return input_embeddings
        for i, bounds in enumerate(data["audio_bounds"]):
            if self.config.chunk_input:
                seq = torch.cat(audio[i], dim=0).to(input_embeddings.dtype)
                used = 0
                for s, e in bounds.tolist():
                    input_embeddings[i, s:e] = seq[used:used + e - s]
                    used += e - s
            else:
                for piece, (s, e) in zip(audio[i], bounds.tolist(), strict=False):
                    if piece.shape[0] != e - s:
                        raise ValueError(f"Shape mismatch: {tuple(piece.shape)} for {e - s} positions")
                    input_embeddings[i, s:e] = piece.to(input_embeddings.dtype)
        return input_embeddings

    def forward(self, data: dict[str, Any], **kwargs: Any) -> Any:
        emb, _ = self.get_vllm_embedding(data)
        if self.config.init_audio:
            emb = self.get_omni_embedding(data, input_embeddings=emb, chunk_length=self.config.audio_chunk_length)
        for key in ("input_ids", "inputs_embeds", "position_ids"):
            kwargs.pop(key, None)
        return self.llm(input_ids=None, position_ids=data["position_ids"].long(), inputs_embeds=emb, **kwargs)
