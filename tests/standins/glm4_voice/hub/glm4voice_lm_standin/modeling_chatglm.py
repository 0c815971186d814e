"""Stand-in for ``modeling_chatglm.py`` of THUDM/glm-4-voice-9b (project-written test double).

Same module tree and output layout as the GLM-4 ChatGLM code: ``ChatGLMForConditionalGeneration.transformer``
(``ChatGLMModel``) with ``embedding.word_embeddings``, ``rotary_pos_emb``, ``encoder`` (``GLMTransformer``:
``layers`` of ``GLMBlock`` returning ``(hidden, kv_cache)``, then ``final_layernorm``) and ``output_layer``.
Hidden states are batch-first ``[b, s, h]``; ``output_hidden_states`` gives ``num_layers + 1`` entries whose
last one is the raw output of the last block, *before* ``final_layernorm`` (as in the real code).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_chatglm import ChatGLMConfig


class RMSNorm(nn.Module):
    def __init__(self, normalized_shape: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        var = hidden_states.float().pow(2).mean(-1, keepdim=True)
        return (self.weight * (hidden_states * torch.rsqrt(var + self.eps))).to(dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin cache ``[seq, dim/2, 2]``; GLM rotates the first ``2 * dim/2`` channels of each head in pairs."""

    def __init__(self, dim: int, rope_ratio: float = 1.0) -> None:
        super().__init__()
        self.dim, self.rope_ratio = dim, rope_ratio

    def forward(self, max_seq_len: int) -> torch.Tensor:
        base = 10000.0 * self.rope_ratio
        theta = 1.0 / (base ** (torch.arange(0, self.dim, 2, dtype=torch.float) / self.dim))
        ang = torch.outer(torch.arange(max_seq_len, dtype=torch.float), theta)
        return torch.stack([ang.cos(), ang.sin()], dim=-1)


def _apply_rope(x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """``x [b, heads, s, hd]``, ``rope [b, s, rd/2, 2]``."""
    rd = rope.shape[-2] * 2
    xr, xp = x[..., :rd], x[..., rd:]
    xr = xr.reshape(*xr.shape[:-1], rd // 2, 2)
    c, s = rope[:, None, ..., 0].to(x.dtype), rope[:, None, ..., 1].to(x.dtype)
    out = torch.stack([xr[..., 0] * c - xr[..., 1] * s, xr[..., 1] * c + xr[..., 0] * s], dim=-1)
    return torch.cat([out.flatten(3), xp], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, config: ChatGLMConfig, layer_number: int) -> None:
        super().__init__()
        self.heads, self.hd = config.num_attention_heads, config.kv_channels
        self.groups = config.multi_query_group_num if config.multi_query_attention else self.heads
        self.query_key_value = nn.Linear(config.hidden_size, (self.heads + 2 * self.groups) * self.hd,
                                         bias=config.add_bias_linear or config.add_qkv_bias)
        self.dense = nn.Linear(self.heads * self.hd, config.hidden_size, bias=config.add_bias_linear)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None, rope: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = self.query_key_value(x).split([self.heads * self.hd, self.groups * self.hd,
                                                 self.groups * self.hd], dim=-1)
        q = q.view(b, s, self.heads, self.hd).transpose(1, 2)
        k = k.view(b, s, self.groups, self.hd).transpose(1, 2)
        v = v.view(b, s, self.groups, self.hd).transpose(1, 2)
        q, k = _apply_rope(q, rope), _apply_rope(k, rope)
        rep = self.heads // self.groups
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if attention_mask is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # boolean mask, True = masked out (GLM convention)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=~attention_mask)
        return self.dense(o.transpose(1, 2).reshape(b, s, self.heads * self.hd))


class MLP(nn.Module):
    def __init__(self, config: ChatGLMConfig) -> None:
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, 2 * config.ffn_hidden_size, bias=config.add_bias_linear)
        self.dense_4h_to_h = nn.Linear(config.ffn_hidden_size, config.hidden_size, bias=config.add_bias_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.dense_h_to_4h(x).chunk(2, dim=-1)
        return self.dense_4h_to_h(F.silu(a) * g)


class GLMBlock(nn.Module):
    def __init__(self, config: ChatGLMConfig, layer_number: int) -> None:
        super().__init__()
        self.layer_number = layer_number
        norm = RMSNorm if config.rmsnorm else nn.LayerNorm
        self.input_layernorm = norm(config.hidden_size, eps=config.layernorm_epsilon)
        self.self_attention = SelfAttention(config, layer_number)
        self.post_attention_layernorm = norm(config.hidden_size, eps=config.layernorm_epsilon)
        self.mlp = MLP(config)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, rotary_pos_emb: torch.Tensor,
                kv_cache: Any = None, use_cache: bool = True) -> tuple[torch.Tensor, Any]:
        h = hidden_states + self.self_attention(self.input_layernorm(hidden_states), attention_mask, rotary_pos_emb)
        return h + self.mlp(self.post_attention_layernorm(h)), None


class GLMTransformer(nn.Module):
    def __init__(self, config: ChatGLMConfig) -> None:
        super().__init__()
        self.num_layers = config.num_layers
        self.post_layer_norm = config.post_layer_norm
        self.layers = nn.ModuleList([GLMBlock(config, i + 1) for i in range(config.num_layers)])
        if self.post_layer_norm:
            norm = RMSNorm if config.rmsnorm else nn.LayerNorm
            self.final_layernorm = norm(config.hidden_size, eps=config.layernorm_epsilon)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, rotary_pos_emb: torch.Tensor,
                kv_caches: Any = None, use_cache: bool | None = True, output_hidden_states: bool | None = False
                ) -> tuple:
        all_hidden = () if output_hidden_states else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden += (hidden_states,)
            hidden_states, _ = layer(hidden_states, attention_mask, rotary_pos_emb, use_cache=use_cache)
        if output_hidden_states:
            all_hidden += (hidden_states,)  # appended before the final norm, as in the real code
        if self.post_layer_norm:
            hidden_states = self.final_layernorm(hidden_states)
        return hidden_states, None, all_hidden, None


class Embedding(nn.Module):
    def __init__(self, config: ChatGLMConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


class ChatGLMPreTrainedModel(PreTrainedModel):
    config_class = ChatGLMConfig
    base_model_prefix = "transformer"
    _no_split_modules: ClassVar[list[str]] = ["GLMBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def get_masks(self, input_ids: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """Boolean ``[b, 1, s, s]`` mask (True = masked): causal and padded keys (padded query rows open)."""
        b, s = input_ids.shape
        full = torch.ones(b, s, s, device=input_ids.device).tril_() * padding_mask[:, None, :]
        full -= padding_mask[:, :, None] - 1
        return (full < 0.5)[:, None]

    def get_position_ids(self, input_ids: torch.Tensor, device: Any) -> torch.Tensor:
        b, s = input_ids.shape
        return torch.arange(s, dtype=torch.long, device=device)[None].repeat(b, 1)


class ChatGLMModel(ChatGLMPreTrainedModel):
    def __init__(self, config: ChatGLMConfig, device: Any = None, empty_init: bool = True) -> None:
        super().__init__(config)
        self.embedding = Embedding(config)
        self.num_layers = config.num_layers
        self.seq_length = config.seq_length
        self.rotary_pos_emb = RotaryEmbedding(config.kv_channels // 2, rope_ratio=config.rope_ratio)
        self.encoder = GLMTransformer(config)
        self.output_layer = nn.Linear(config.hidden_size, config.padded_vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embedding.word_embeddings

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, full_attention_mask: torch.Tensor | None = None,
                past_key_values: Any = None, inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None) -> Any:
        if inputs_embeds is None:
            inputs_embeds = self.embedding(input_ids)
        if full_attention_mask is None and attention_mask is not None and not attention_mask.all():
            full_attention_mask = self.get_masks(input_ids, attention_mask)
        rope = self.rotary_pos_emb(self.seq_length)
        rope = rope[position_ids] if position_ids is not None else rope[None, :input_ids.shape[1]]
        hidden, presents, all_hidden, attns = self.encoder(
            inputs_embeds, full_attention_mask, rotary_pos_emb=rope, kv_caches=past_key_values,
            use_cache=use_cache, output_hidden_states=output_hidden_states)
        if return_dict is False:
            return tuple(v for v in (hidden, presents, all_hidden, attns) if v is not None)
        return BaseModelOutputWithPast(last_hidden_state=hidden, past_key_values=presents,
                                       hidden_states=all_hidden, attentions=attns)


class ChatGLMForConditionalGeneration(ChatGLMPreTrainedModel):
    def __init__(self, config: ChatGLMConfig, empty_init: bool = True, device: Any = None) -> None:
        super().__init__(config)
        self.max_sequence_length = config.max_length if hasattr(config, "max_length") else None
        self.transformer = ChatGLMModel(config, empty_init=empty_init, device=device)
        self.config = config
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, past_key_values: Any = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                use_cache: bool | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                return_last_logit: bool | None = False) -> Any:
        out = self.transformer(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                               past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                               output_hidden_states=output_hidden_states, return_dict=True)
        hidden = out.last_hidden_state
        if return_last_logit:
            hidden = hidden[:, -1:]
        logits = self.transformer.output_layer(hidden)
        if return_dict is False:
            return (logits, out.past_key_values, out.hidden_states)
        return CausalLMOutputWithPast(logits=logits, past_key_values=out.past_key_values,
                                      hidden_states=out.hidden_states, attentions=out.attentions)
