"""Stand-in for Baichuan-Audio's ``modeling_omni.py`` (hearlike test double, interface only).

Module tree and data flow as in the real remote code:

* ``OmniForCausalLM.audio_tokenizer`` (``OmniAudioTokenizer``): ``audio_model`` (the Whisper-style encoder,
  blocks in ``audio_model.layers``) → ``audio_bridge_model`` (×``avg_pooler`` merge + residual VQ) → discrete
  code ids, one row of ``len(codebook_sizes)`` ids per 12.5 Hz audio token;
* ``OmniForCausalLM.model`` (``OmniModel``): ``embed_tokens``; the audio pad positions of ``input_ids``
  (``audio_config.audio_pad_token_id``) get the **sum of the per-codebook embeddings**
  (``audio_embed_layers``) of the codes, in order; then ``layers`` and the final ``norm``;
  ``hidden_states`` = (embedding output, block 1 … block L-1 outputs, norm(block L output)).

The LM is a tiny pre-norm RoPE decoder written here; only the interface and the bookkeeping matter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .audio_modeling_omni import OmniAudioEncoder, OmniAudioVQBridgeTokenizer
from .configuration_omni import OmniConfig
from .processor_omni import OmniMMProcessor


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype)


def rope(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary position embedding of ``x [B, H, T, D]`` at positions ``pos [B, T]``."""
    half = x.shape[-1] // 2
    inv = 1.0 / theta ** (torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = pos.float()[:, None, :, None] * inv
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x.float()[..., :half], x.float()[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).to(x.dtype)


class DecoderLayer(nn.Module):
    """Pre-norm causal attention + SwiGLU MLP; returns a tuple like the real layer."""

    def __init__(self, config: OmniConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.heads, self.theta = config.num_attention_heads, config.rope_theta
        self.W_pack = nn.Linear(d, 3 * d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.gate_proj = nn.Linear(d, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(d, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, d, bias=False)
        self.input_layernorm = RMSNorm(d, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(d, config.rms_norm_eps)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, **_: Any) -> tuple[torch.Tensor]:
        b, t, d = hidden_states.shape
        hd = d // self.heads
        q, k, v = self.W_pack(self.input_layernorm(hidden_states)).split(d, -1)
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        q, k = rope(q, position_ids, self.theta), rope(k, position_ids, self.theta)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        h = hidden_states + self.o_proj(a.transpose(1, 2).reshape(b, t, d))
        x = self.post_attention_layernorm(h)
        return (h + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)),)


class OmniPreTrainedModel(PreTrainedModel):
    config_class = OmniConfig
    base_model_prefix = "model"

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear | nn.Conv1d):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)


class OmniModel(OmniPreTrainedModel):
    """Text embeddings + audio code embeddings at the pad positions → decoder blocks → final norm."""

    def __init__(self, config: OmniConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.layers = nn.ModuleList([DecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = RMSNorm(d, config.rms_norm_eps)
        self.audio_embed_layers = nn.ModuleList([
            nn.Embedding(int(s) + 1, d) for s in config.audio_config.vq_config.codebook_sizes])
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, audios_tokens: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, **_: Any) -> BaseModelOutputWithPast:
        b, t = input_ids.shape
        emb = self.embed_tokens(input_ids)
        pad = input_ids == self.config.audio_config.audio_pad_token_id
        if audios_tokens is not None:
            audio = sum(layer(audios_tokens[..., i]) for i, layer in enumerate(self.audio_embed_layers))
            if int(pad.sum()) != audio.shape[0]:  # the real code asserts the same
                raise AssertionError(f"{int(pad.sum())} audio pad tokens, {audio.shape[0]} audio codes")
            emb = emb.masked_scatter(pad[..., None].expand_as(emb), audio.to(emb.dtype))
        if position_ids is None:
            position_ids = torch.arange(t, device=input_ids.device)[None, :].expand(b, t)
        keys = torch.ones(b, t, dtype=torch.bool, device=input_ids.device) if attention_mask is None \
            else attention_mask.bool()
        causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
        mask = (causal[None] & keys[:, None, :]) | torch.eye(t, dtype=torch.bool, device=input_ids.device)
        h, states = emb, [emb]
        for layer in self.layers:
            h = layer(h, attention_mask=mask[:, None], position_ids=position_ids)[0]
            states.append(h)
        h = self.norm(h)
        states[-1] = h  # like the real model: the last entry is post-norm
        return BaseModelOutputWithPast(last_hidden_state=h,
                                       hidden_states=tuple(states) if output_hidden_states else None)


class OmniAudioTokenizer(nn.Module):
    """``audio_model`` (encoder) + ``audio_bridge_model`` (merge + RVQ): audio → code ids."""

    def __init__(self, config: OmniConfig) -> None:
        super().__init__()
        self.config = config
        self.audio_model = OmniAudioEncoder(config.audio_config)
        self.audio_bridge_model = OmniAudioVQBridgeTokenizer(config)

    @torch.no_grad()
    def forward(self, audios: torch.Tensor, encoder_length: torch.Tensor, bridge_length: torch.Tensor
                ) -> torch.Tensor:
        return self.audio_bridge_model(self.audio_model(audios, encoder_length), bridge_length)


class OmniForCausalLM(OmniPreTrainedModel):
    """Top-level model: ``model`` (LM), ``audio_tokenizer``, ``lm_head``; ``bind_processor`` as in the real code."""

    def __init__(self, config: OmniConfig) -> None:
        super().__init__(config)
        self.model = OmniModel(config)
        self.audio_tokenizer = OmniAudioTokenizer(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def bind_processor(self, tokenizer: Any, **kwargs: Any) -> OmniMMProcessor:
        self.processor = OmniMMProcessor(tokenizer=tokenizer, config=self.config, **kwargs)
        return self.processor

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, audios: torch.Tensor | None = None,
                audios_tokens: torch.Tensor | None = None, encoder_length: torch.Tensor | None = None,
                bridge_length: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                **_: Any) -> CausalLMOutputWithPast:
        if audios_tokens is None and audios is not None and len(audios) > 0:
            audios_tokens = self.audio_tokenizer(audios, encoder_length, bridge_length)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         audios_tokens=audios_tokens, output_hidden_states=output_hidden_states)
        return CausalLMOutputWithPast(logits=self.lm_head(out.last_hidden_state), hidden_states=out.hidden_states)
