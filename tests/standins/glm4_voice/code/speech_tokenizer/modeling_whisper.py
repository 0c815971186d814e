"""Stand-in for GLM-4-Voice ``speech_tokenizer/modeling_whisper.py`` (project-written test double).

Reproduces the interface and bookkeeping of the real ``WhisperVQEncoder`` (THUDM/GLM-4-Voice@eb00ce9) with
tiny sizes: causal or symmetric convolutions (stride 1 then 2: 100 Hz mel → 50 Hz), sliced 2-D attention
mask ``mask[:, ::conv_stride]``, block-causal attention (``tril ∪ block-diagonal``, padded keys masked),
``layers`` = ``quantize_position`` blocks when ``quantize_encoder_only``, average/max pooling by
``pooling_kernel_size`` right after block ``pooling_position`` (mask sliced ``[:, ::k]``), nearest-code
vector quantization after block ``quantize_position`` followed by ``embed_positions2``, and the output
field ``quantized_token_ids``. Training-only branches (EMA codebook updates, losses) are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import PreTrainedModel

from .configuration_whisper import WhisperVQConfig


@dataclass
class QuantizedBaseModelOutput(BaseModelOutput):
    """Encoder output plus the VQ token ids (``[batch, pooled frames]``)."""

    quantized_token_ids: torch.LongTensor | None = None


def _sinusoids(length: int, channels: int) -> torch.Tensor:
    scale = math.log(10000.0) / (channels // 2 - 1)
    inv = torch.exp(-scale * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([t.sin(), t.cos()], dim=1)


def _nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes, ids)``: the squared-euclidean nearest codebook row of every frame."""
    flat = x.reshape(-1, codebook.shape[1])
    dist = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1)[None, :] - 2.0 * flat @ codebook.t()
    ids = dist.argmin(dim=1)
    return codebook[ids].view_as(x), ids


class CausalConv1d(nn.Conv1d):
    """Conv1d padded only on the left (``dilation * (kernel - 1)``), so frame t sees no later input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, dilation=dilation,
                         **kwargs)
        self.left_padding = dilation * (kernel_size - 1)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(inp, (self.left_padding, 0)))


class WhisperVQAttention(nn.Module):
    """Plain multi-head self-attention with an additive ``[b, 1, q, k]`` mask (k_proj without bias)."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, d = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x) * self.scaling), heads(self.k_proj(x)), heads(self.v_proj(x))
        w = q @ k.transpose(2, 3)
        if mask is not None:
            w = w + mask
        w = w.softmax(dim=-1)
        return self.out_proj((w @ v).transpose(1, 2).reshape(b, t, d)), w


class WhisperVQEncoderLayer(nn.Module):
    """Pre-norm Whisper block; returns a tuple whose first item is the block output (as the real layer)."""

    def __init__(self, config: WhisperVQConfig, is_causal: bool = False) -> None:
        super().__init__()
        d = config.d_model
        self.is_causal = is_causal
        self.self_attn = WhisperVQAttention(d, config.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                layer_head_mask: torch.Tensor | None = None, output_attentions: bool = False) -> tuple:
        h, w = self.self_attn(self.self_attn_layer_norm(hidden_states), attention_mask)
        hidden_states = hidden_states + h
        h = self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(hidden_states))))
        hidden_states = hidden_states + h
        return (hidden_states, w) if output_attentions else (hidden_states,)


class WhisperPreTrainedModel(PreTrainedModel):
    config_class = WhisperVQConfig
    base_model_prefix = "model"
    main_input_name = "input_features"

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def _get_feat_extract_output_lengths(self, input_lengths: torch.LongTensor) -> torch.LongTensor:
        return (input_lengths - 1) // 2 + 1


class WhisperVQEncoder(WhisperPreTrainedModel):
    """Tokenizer encoder: conv front end, ``layers``, pooling and VQ at their configured block positions."""

    def __init__(self, config: WhisperVQConfig) -> None:
        super().__init__(config)
        d = config.d_model
        conv = CausalConv1d if config.encoder_causal_convolution else nn.Conv1d
        self.conv1 = conv(config.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = conv(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, d)
        self.embed_positions.requires_grad_(False)
        n = config.quantize_position if config.quantize_encoder_only else config.encoder_layers
        self.layers = nn.ModuleList([
            WhisperVQEncoderLayer(config, is_causal=config.encoder_causal_attention
                                  or (config.quantize_causal_encoder and i < config.quantize_position))
            for i in range(n)])
        if not config.quantize_encoder_only:
            self.layer_norm = nn.LayerNorm(d)
        self.pooling_layer = None
        if config.pooling_kernel_size is not None:
            pool = {"avg": nn.AvgPool1d, "max": nn.MaxPool1d}[config.pooling_type]
            self.pooling_layer = pool(kernel_size=config.pooling_kernel_size)
        self.codebook = None
        self.embed_positions2 = None
        if config.quantize_vocab_size is not None:
            self.codebook = nn.Embedding(config.quantize_vocab_size, d)
            n_pos = config.max_source_positions
            if config.pooling_kernel_size is not None:
                n_pos = math.ceil(n_pos / config.pooling_kernel_size)
            self.embed_positions2 = nn.Embedding(n_pos, d)
        self.post_init()
        with torch.no_grad():
            self.embed_positions.weight.copy_(_sinusoids(*self.embed_positions.weight.shape))
            if self.embed_positions2 is not None:
                self.embed_positions2.weight.copy_(self.embed_positions.weight[:self.embed_positions2.num_embeddings])

    def _mask(self, valid: torch.Tensor, block: int | None) -> torch.Tensor:
        """Additive ``[b, 1, t, t]`` mask: padded keys masked; with ``block``, key j visible to query i iff
        ``j <= i`` or both lie in the same block of ``block`` frames."""
        t = valid.shape[1]
        idx = torch.arange(t, device=valid.device)
        if block is None:
            allowed = torch.ones(t, t, dtype=torch.bool, device=valid.device)
        else:
            allowed = (idx[None, :] <= idx[:, None]) | (idx[None, :] // block == idx[:, None] // block)
        allowed = allowed[None] & valid.bool()[:, None, :]
        return ((~allowed).to(self.dtype) * torch.finfo(self.dtype).min)[:, None]

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None,
                head_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                quantized_token_ids: torch.LongTensor | None = None) -> Any:
        cfg = self.config
        b, _, t_mel = input_features.shape
        step = self.conv1.stride[0] * self.conv2.stride[0]
        seq = t_mel // step
        mask = attention_mask[:, ::step]
        block = cfg.quantize_causal_block_size
        ext = self._mask(mask, block)
        x = nn.functional.gelu(self.conv1(input_features))
        x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.embed_positions.weight[:seq]
        states: tuple = ()
        attns: tuple = ()
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                states += (x,)
            out = layer(x, ext, layer_head_mask=None, output_attentions=bool(output_attentions))
            x = out[0]
            if output_attentions:
                attns += (out[1],)
            k = cfg.pooling_kernel_size
            if k is not None and i + 1 == cfg.pooling_position:
                x = x.permute(0, 2, 1)
                if x.shape[-1] % k:
                    x = nn.functional.pad(x, (0, k - x.shape[-1] % k))
                x = self.pooling_layer(x).permute(0, 2, 1)
                mask = mask[:, ::k]
                ext = self._mask(mask, None if block is None else block // k)
            if cfg.quantize_vocab_size is not None and i + 1 == cfg.quantize_position:
                if quantized_token_ids is not None:
                    x = self.codebook(quantized_token_ids)
                else:
                    x, ids = _nearest_code(x, self.codebook.weight)
                    quantized_token_ids = ids.reshape(b, x.shape[1])
                x = x + self.embed_positions2.weight[:x.shape[1]]
        if not cfg.quantize_encoder_only:
            x = self.layer_norm(x)
        if output_hidden_states:
            states += (x,)
        return QuantizedBaseModelOutput(last_hidden_state=x, hidden_states=states or None,
                                        attentions=attns or None, quantized_token_ids=quantized_token_ids)


class WhisperVQForConditionalGeneration(WhisperPreTrainedModel):
    """Import-compatible placeholder (the real class adds the Whisper decoder; extraction never uses it)."""

    def __init__(self, config: WhisperVQConfig) -> None:
        super().__init__(config)
        self.model = nn.Module()
        self.model.encoder = WhisperVQEncoder(config)
        self.post_init()

    def get_encoder(self) -> WhisperVQEncoder:
        return self.model.encoder

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("stand-in: decoding is not part of the test double")
