"""Stand-in for GLM-4-Voice ``speech_tokenizer/configuration_whisper.py`` (project-written test double).

Same class name, base class and extra fields (with the same defaults) as the real ``WhisperVQConfig`` at
THUDM/GLM-4-Voice@eb00ce9; only the fields the tokenizer encoder reads are used by the stand-in model.
"""

from __future__ import annotations

from typing import Any

from transformers import WhisperConfig


class WhisperVQConfig(WhisperConfig):
    """Whisper config plus the pooling / vector-quantization / causality fields of the VQ encoder."""

    def __init__(self, pooling_kernel_size: int | None = None, pooling_type: str = "max", pooling_position: int = 0,
                 quantize_vocab_size: int | None = None, quantize_position: int = 16,
                 quantize_commit_coefficient: float = 0.25, quantize_loss_scale: float = 1.0,
                 quantize_ema_decay: float | None = None, quantize_restart_interval: int | None = None,
                 quantize_encoder_only: bool = False, quantize_causal_encoder: bool = False,
                 quantize_causal_block_size: int | None = None, skip_language_detection: bool = False,
                 encoder_causal_attention: bool = False, encoder_causal_convolution: bool = False,
                 **kwargs: Any) -> None:
        self.pooling_kernel_size = pooling_kernel_size
        self.pooling_type = pooling_type
        self.pooling_position = pooling_position
        self.quantize_vocab_size = quantize_vocab_size
        self.quantize_position = quantize_position
        self.quantize_commit_coefficient = quantize_commit_coefficient
        self.quantize_loss_scale = quantize_loss_scale
        self.quantize_ema_decay = quantize_ema_decay
        self.quantize_restart_interval = quantize_restart_interval
        self.quantize_encoder_only = quantize_encoder_only
        self.quantize_causal_encoder = quantize_causal_encoder
        self.quantize_causal_block_size = quantize_causal_block_size
        self.skip_language_detection = skip_language_detection
        self.encoder_causal_attention = encoder_causal_attention
        self.encoder_causal_convolution = encoder_causal_convolution
        super().__init__(**kwargs)
