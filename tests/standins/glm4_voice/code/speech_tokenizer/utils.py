"""Stand-in for GLM-4-Voice ``speech_tokenizer/utils.py`` (project-written test double).

Like the real module it imports ``torchaudio`` at import time (so the adapter must not import it), and
``extract_speech_token`` follows the real bookkeeping: optional resampling to 16 kHz, first channel only,
consecutive 30 s segments, one feature-extractor call per batch of up to 128 segments with
``padding="longest"`` and ``pad_to_multiple_of = conv1.stride * conv2.stride * pooling_kernel_size * hop``,
the encoder's ``quantized_token_ids`` kept where ``attention_mask[:, ::conv strides][:, ::pooling]`` is 1,
segments of one utterance concatenated. The real code moves everything to ``"cuda"``; here the device is
the module attribute ``DEVICE`` (tests set it to ``"cpu"``).
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio  # at module level, as in the real utils.py

from .modeling_whisper import WhisperVQEncoder, WhisperVQForConditionalGeneration  # noqa: F401

DEVICE = "cuda"
SEGMENT_S = 30
BATCH = 128


def extract_speech_token(model: WhisperVQEncoder, feature_extractor: Any, utts: list) -> list[list[int]]:
    """Speech-token ids per utterance; ``utts`` holds ``(waveform [channels, n], sample_rate)`` tuples."""
    with torch.no_grad():
        segments: list[Any] = []
        owner: list[int] = []
        for u, (wave, sr) in enumerate(utts):
            wave = wave.to(DEVICE)
            if sr != 16000:
                wave = torchaudio.transforms.Resample(orig_freq=sr, new_freq=16000).to(DEVICE)(wave)
            audio = wave[0].cpu().numpy()
            for start in range(0, audio.shape[0], SEGMENT_S * 16000):
                segments.append(audio[start:start + SEGMENT_S * 16000])
                owner.append(u)
        pool = model.config.pooling_kernel_size or 1
        conv = model.conv1.stride[0] * model.conv2.stride[0]
        multiple = conv * pool * feature_extractor.hop_length
        tokens: list[list[int]] = [[] for _ in utts]
        for b0 in range(0, len(segments), BATCH):
            feats = feature_extractor(segments[b0:b0 + BATCH], sampling_rate=16000, return_attention_mask=True,
                                      return_tensors="pt", device=DEVICE, padding="longest",
                                      pad_to_multiple_of=multiple).to(device=DEVICE)
            ids = model(**feats).quantized_token_ids
            keep = feats.attention_mask[:, ::conv][:, ::model.config.pooling_kernel_size]
            assert keep.shape == ids.shape
            for i in range(ids.shape[0]):
                tokens[owner[b0 + i]] += ids[i][keep[i].bool()].tolist()
        return tokens
