"""Stand-in for Baichuan-Audio's ``configuration_omni.py`` (hearlike test double, interface only).

Like the real ``OmniConfig`` (``model_type = "omni"``), ``audio_config`` is a ``WhisperConfig`` carrying the
extra audio fields the processor and the audio tokenizer read (``max_audio_seconds``, ``split_overlap``,
``kernel_size``, ``stride_size``, ``avg_pooler``, ``hop_length``, ``n_fft``, ``sampling_rate``, the audio token
ids) and a nested ``vq_config`` with ``codebook_sizes``.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig, WhisperConfig


class OmniConfig(PretrainedConfig):
    """LM hyper-parameters + ``audio_config`` (WhisperConfig with the Baichuan audio fields)."""

    model_type = "omni"

    def __init__(self, vocab_size: int = 300, hidden_size: int = 64, intermediate_size: int = 128,
                 num_hidden_layers: int = 2, num_attention_heads: int = 4, rms_norm_eps: float = 1e-6,
                 rope_theta: float = 1e6, initializer_range: float = 0.02, pad_token_id: int = 0,
                 audio_config: dict | WhisperConfig | None = None, multimodal: list[str] | None = None,
                 tie_word_embeddings: bool = False, **kwargs: Any) -> None:
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.intermediate_size = int(intermediate_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.rms_norm_eps = float(rms_norm_eps)
        self.rope_theta = float(rope_theta)
        self.initializer_range = float(initializer_range)
        self.multimodal = list(multimodal or ["audio"])
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)
        if audio_config is not None:
            if isinstance(audio_config, dict):
                audio_config = WhisperConfig(**audio_config)
            self.audio_config = audio_config
            vq = getattr(self.audio_config, "vq_config", None)
            if isinstance(vq, dict):
                self.audio_config.vq_config = PretrainedConfig(**vq)
