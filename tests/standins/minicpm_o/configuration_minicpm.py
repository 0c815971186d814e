"""Stand-in for MiniCPM-o-2.6's ``configuration_minicpm.py`` (project-written; see README.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import Qwen2Config, WhisperConfig


class MiniCPMOConfig(Qwen2Config):
    """Qwen2 LM config plus the audio fields MiniCPM-o reads (``chunk_input`` comes from config.json kwargs)."""

    model_type = "minicpmo"
    sub_configs: ClassVar[dict[str, type]] = {"audio_config": WhisperConfig}

    def __init__(self, audio_config: dict | WhisperConfig | None = None, audio_pool_step: int = 2,
                 audio_chunk_length: float = 1.0, stream_input: bool = False, init_vision: bool = True,
                 init_audio: bool = True, init_tts: bool = True, **kwargs: Any) -> None:
        self.audio_pool_step = audio_pool_step
        self.audio_chunk_length = audio_chunk_length
        self.stream_input = stream_input
        self.init_vision = init_vision
        self.init_audio = init_audio
        self.init_tts = init_tts
        if audio_config is None or isinstance(audio_config, dict):
            audio_config = WhisperConfig(**(audio_config or {}))
        self.audio_config = audio_config
        super().__init__(**kwargs)
