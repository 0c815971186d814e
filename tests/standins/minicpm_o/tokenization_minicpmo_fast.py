"""Stand-in for MiniCPM-o-2.6's ``tokenization_minicpmo_fast.py`` (project-written; see README.md).

Same special-token names and ``*_id`` properties as the real ``MiniCPMOTokenizerFast``; the base class is
``PreTrainedTokenizerFast`` (the real one derives from ``Qwen2TokenizerFast``) so a byte-level tokenizer.json
loads under transformers 4.44 and 5.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerFast


class MiniCPMOTokenizerFast(PreTrainedTokenizerFast):
    """Byte-level tokenizer with MiniCPM-o's image/audio/speaker special tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.im_start, self.im_end = "<image>", "</image>"
        self.slice_start, self.slice_end = "<slice>", "</slice>"
        self.im_id_start, self.im_id_end = "<image_id>", "</image_id>"
        self.audio_start, self.audio_end = "<|audio_start|>", "<|audio_end|>"
        self.spk_start, self.spk_end = "<|spk_bos|>", "<|spk_eos|>"
        self.tts_start, self.tts_end = "<|tts_bos|>", "<|tts_eos|>"

    def _id(self, token: str) -> int:
        return self.convert_tokens_to_ids(token)

    @property
    def im_start_id(self) -> int:
        return self._id(self.im_start)

    @property
    def im_end_id(self) -> int:
        return self._id(self.im_end)

    @property
    def slice_start_id(self) -> int:
        return self._id(self.slice_start)

    @property
    def slice_end_id(self) -> int:
        return self._id(self.slice_end)

    @property
    def audio_start_id(self) -> int:
        return self._id(self.audio_start)

    @property
    def audio_end_id(self) -> int:
        return self._id(self.audio_end)

    @property
    def spk_start_id(self) -> int:
        return self._id(self.spk_start)

    @property
    def spk_end_id(self) -> int:
        return self._id(self.spk_end)

    @property
    def unk_id(self) -> int:
        return self.unk_token_id
