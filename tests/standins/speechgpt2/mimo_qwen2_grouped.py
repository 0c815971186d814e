"""Test stand-in for ``mimo_qwen2_grouped.py`` of OpenMOSS/SpeechGPT-2.0-preview (hearlike tests only).

Not the real code: a tiny re-implementation of the *interface* the real module exposes at commit
730c90f633318111035a8e58dca52e3405f4e9d6 — the names ``MIMOModelArguments`` and ``MIMOLlamaForCausalLM``,
the constructor signature ``(config, padding_idx, sosp_idx, eosp_idx, args, ...)``, the submodules
``model`` (a Qwen2 model whose ``layers`` are the LM blocks), ``speech_embedddings`` (sic, one embedding per
RVQ level, row ``speech_vocab_size - 1`` = 1024 is the zero embedding), ``speech_group_downcast`` and the
forward bookkeeping: ``input_ids`` is either ``[B, n_vq + 1, T * group_size]`` or flat position-major
``[B, T * group_size * (n_vq + 1)]``; channel 0 carries one text token per LM position (every
``group_size``-th column), channels 1..n_vq carry ``group_size`` codec frames per LM position; one LM position's
input embedding = text embedding + downcast of the concatenated (summed-over-levels) speech embeddings.
``hidden_states`` in the output are the Qwen2 model's own. The local (patch-decoder) transformer is left out:
``forward`` does not use it. ``local_*`` defaults are tiny here (real: 1024 dim, 8 layers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput
from transformers.models.qwen2.modeling_qwen2 import Qwen2Model, Qwen2PreTrainedModel


@dataclass
class MIMOModelArguments:
    """Model arguments with the real field names; speech/grouping defaults equal the real ones."""

    model_name_or_path: str | None = field(default=None)
    speech_vocab_size: int = field(default=1025)
    n_vq: int = field(default=3)
    vocab_size: int = field(default=-1)
    group_size: int = field(default=3)
    local_dim: int = field(default=16)
    local_layers: int = field(default=1)
    local_attn_heads: int = field(default=2)
    local_ffn_dim: int = field(default=32)
    local_attn_dropout: float = field(default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MIMOCausalLMOutputWithCrossAttentions(ModelOutput):
    """Output with the real field names."""

    loss: Any = None
    text_logits: Any = None
    past_key_values: Any = None
    local_past_key_values: Any = None
    hidden_states: Any = None
    local_hidden_states: Any = None
    attentions: Any = None


class MIMOLlamaForCausalLM(Qwen2PreTrainedModel):
    """Tiny MIMO LM: Qwen2 backbone fed with text + grouped RVQ speech embeddings."""

    def __init__(self, config: Any, padding_idx: int, sosp_idx: int, eosp_idx: int, args: MIMOModelArguments,
                 token_loss_weights: Any = None, audio_loss_weights: Any = None,
                 text_auxiliary_loss_inference_mode: bool = False, empty_idx: int = -1) -> None:
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.vocab_size = config.vocab_size if args.vocab_size < 0 else args.vocab_size
        self.padding_idx = padding_idx
        self.speech_vocab_size = config.speech_vocab_size = args.speech_vocab_size
        config.group_size = args.group_size
        self.n_vq = config.n_vq = args.n_vq
        self.sosp_idx, self.eosp_idx, self.empty_idx = sosp_idx, eosp_idx, empty_idx
        self.zeroemb_idx = self.speech_vocab_size - 1
        if self.zeroemb_idx != 1024:
            raise ValueError("speech_vocab_size must be 1025 (zero embedding at 1024)")
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.speech_embedddings = nn.ModuleList(
            nn.Embedding(self.speech_vocab_size, args.local_dim, padding_idx=self.zeroemb_idx) for _ in range(self.n_vq))
        self.speech_group_downcast = nn.Linear(args.local_dim * args.group_size, config.hidden_size, bias=False)
        self.hidden_states_downcast = nn.Linear(config.hidden_size, args.local_dim, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, position_ids: Any = None,
                past_key_values: Any = None, inputs_embeds: Any = None, labels: Any = None,
                use_cache: bool | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                cache_position: Any = None, num_logits_to_keep: int = 0, **kwargs: Any
                ) -> MIMOCausalLMOutputWithCrossAttentions:
        b = input_ids.shape[0]
        if input_ids.dim() <= 2:
            # flat position-major layout -> [B, channels, columns]
            input_ids = input_ids.reshape(b, -1, self.n_vq + 1).transpose(1, 2)
        ids = input_ids.int()
        g = self.config.group_size
        text_ids = ids[:, 0, ::g]
        speech = ids[:, 1:, :].reshape(b, self.n_vq, -1, g).transpose(1, 2)  # [B, T, n_vq, g]
        summed = self.speech_embedddings[0](speech[:, :, 0, :])
        for i in range(1, self.n_vq):
            summed = summed + self.speech_embedddings[i](speech[:, :, i, :])
        grouped = self.speech_group_downcast(summed.reshape(b, summed.shape[1], -1))
        embeds = self.model.embed_tokens(text_ids) + grouped
        # No KV cache here (extraction runs one full forward); transformers 5 renamed its cache argument.
        out = self.model(attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=embeds,
                         use_cache=False, output_hidden_states=output_hidden_states)
        h = out[0]
        return MIMOCausalLMOutputWithCrossAttentions(
            text_logits=self.lm_head(h[:, -num_logits_to_keep:, :]), hidden_states=out.hidden_states,
            local_hidden_states=self.hidden_states_downcast(h[:, -1:, :]))
