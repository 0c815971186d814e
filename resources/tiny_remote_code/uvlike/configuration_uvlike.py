"""Configuration of the tiny Ultravox-like test model (project-written; see README.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import LlamaConfig, PretrainedConfig, WhisperConfig


class UVLikeConfig(PretrainedConfig):
    """Whisper-style audio encoder + ×``stack_factor`` frame stacking projector + Llama LM."""

    model_type = "uvlike"
    sub_configs: ClassVar[dict[str, type]] = {"audio_config": WhisperConfig, "text_config": LlamaConfig}

    def __init__(self, audio_config: dict | WhisperConfig | None = None,
                 text_config: dict | LlamaConfig | None = None, stack_factor: int = 8,
                 audio_token_id: int = 0, projector_hidden: int = 64, **kwargs: Any) -> None:
        if isinstance(audio_config, dict) or audio_config is None:
            audio_config = WhisperConfig(**(audio_config or {}))
        if isinstance(text_config, dict) or text_config is None:
            text_config = LlamaConfig(**(text_config or {}))
        self.audio_config = audio_config
        self.text_config = text_config
        self.stack_factor = int(stack_factor)
        self.audio_token_id = int(audio_token_id)
        self.projector_hidden = int(projector_hidden)
        super().__init__(**kwargs)
