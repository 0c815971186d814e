"""Processor of the tiny Ultravox-like test model (project-written; see README.md).

Like Ultravox's processor it expands the ``<|audio|>`` placeholder to ``ceil(frames / stack_factor)``
tokens and returns ``audio_token_start_idx`` / ``audio_token_len`` (one clip per text).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin


class UVLikeProcessor(ProcessorMixin):
    """Whisper feature extractor (no 30 s padding) + tokenizer."""

    def __init__(self, feature_extractor: Any, tokenizer: Any, audio_placeholder: str = "<|audio|>",
                 stack_factor: int = 8) -> None:
        self.audio_placeholder = audio_placeholder
        self.stack_factor = int(stack_factor)
        super().__init__(feature_extractor, tokenizer)

    def __call__(self, text: str, audio: np.ndarray | None = None, sampling_rate: int = 16000,
                 return_tensors: str = "pt", **kwargs: Any) -> BatchFeature:
        if audio is None:
            return BatchFeature(dict(self.tokenizer(text, return_tensors=return_tensors)))
        fe = self.feature_extractor(np.asarray(audio, dtype=np.float32), sampling_rate=sampling_rate,
                                    padding="longest", return_attention_mask=True, return_tensors="pt")
        mel_len = int(fe["attention_mask"].sum())
        n_frames = (mel_len - 1) // 2 + 1
        n_tok = math.ceil(n_frames / self.stack_factor)
        head, sep, tail = text.partition(self.audio_placeholder)
        if not sep:
            raise ValueError(f"text has no {self.audio_placeholder!r} placeholder")
        ids_head = self.tokenizer(head, add_special_tokens=False)["input_ids"]
        ids_tail = self.tokenizer(tail, add_special_tokens=False)["input_ids"]
        audio_id = self.tokenizer.convert_tokens_to_ids(self.audio_placeholder)
        ids = ids_head + [audio_id] * n_tok + ids_tail
        return BatchFeature({
            "input_ids": torch.tensor([ids]),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "audio_values": fe["input_features"],
            "audio_lens": torch.tensor([mel_len]),
            "audio_token_start_idx": torch.tensor([len(ids_head)]),
            "audio_token_len": torch.tensor([n_tok]),
        })
