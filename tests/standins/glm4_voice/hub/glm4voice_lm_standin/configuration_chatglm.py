"""Stand-in for ``configuration_chatglm.py`` of THUDM/glm-4-voice-9b (project-written test double).

Field names and defaults follow the GLM-4 ``ChatGLMConfig`` (``model_type = "chatglm"``).
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class ChatGLMConfig(PretrainedConfig):
    """ChatGLM (GLM-4) LM configuration."""

    model_type = "chatglm"

    def __init__(self, num_layers: int = 28, padded_vocab_size: int = 65024, hidden_size: int = 4096,
                 ffn_hidden_size: int = 13696, kv_channels: int = 128, num_attention_heads: int = 32,
                 seq_length: int = 2048, hidden_dropout: float = 0.0, classifier_dropout: float | None = None,
                 attention_dropout: float = 0.0, layernorm_epsilon: float = 1e-5, rmsnorm: bool = True,
                 apply_residual_connection_post_layernorm: bool = False, post_layer_norm: bool = True,
                 add_bias_linear: bool = False, add_qkv_bias: bool = False, bias_dropout_fusion: bool = True,
                 multi_query_attention: bool = False, multi_query_group_num: int = 1, rope_ratio: float = 1,
                 apply_query_key_layer_scaling: bool = True, attention_softmax_in_fp32: bool = True,
                 fp32_residual_connection: bool = False, **kwargs: Any) -> None:
        self.num_layers = num_layers
        self.vocab_size = padded_vocab_size
        self.padded_vocab_size = padded_vocab_size
        self.hidden_size = hidden_size
        self.ffn_hidden_size = ffn_hidden_size
        self.kv_channels = kv_channels
        self.num_attention_heads = num_attention_heads
        self.seq_length = seq_length
        self.hidden_dropout = hidden_dropout
        self.classifier_dropout = classifier_dropout
        self.attention_dropout = attention_dropout
        self.layernorm_epsilon = layernorm_epsilon
        self.rmsnorm = rmsnorm
        self.apply_residual_connection_post_layernorm = apply_residual_connection_post_layernorm
        self.post_layer_norm = post_layer_norm
        self.add_bias_linear = add_bias_linear
        self.add_qkv_bias = add_qkv_bias
        self.bias_dropout_fusion = bias_dropout_fusion
        self.multi_query_attention = multi_query_attention
        self.multi_query_group_num = multi_query_group_num
        self.rope_ratio = rope_ratio
        self.apply_query_key_layer_scaling = apply_query_key_layer_scaling
        self.attention_softmax_in_fp32 = attention_softmax_in_fp32
        self.fp32_residual_connection = fp32_residual_connection
        super().__init__(**kwargs)
