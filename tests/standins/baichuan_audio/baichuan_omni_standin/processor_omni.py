"""Stand-in for Baichuan-Audio's ``processor_omni.py`` (hearlike test double, interface only).

Bookkeeping as in the real ``OmniMMProcessor`` / ``OmniAudioProcessor`` (audio part only):

* an audio reference in the text is ``<audio_start>{"path": "..."}<audio_end>`` (tags = the tokenizer's
  spellings of ``audio_config.audio_start_token_id`` / ``audio_end_token_id``); the file is read at 16 kHz
  (the real code uses torchaudio; this double uses soundfile, which reads the same float samples);
* ``split_with_overlap``: audio longer than ``max_audio_seconds`` is cut into windows of that length, each
  later window starting ``split_overlap`` s before the previous end; windows shorter than ``n_fft`` samples
  are dropped;
* ``extract_fbank_features``: Whisper-style log-mel of the window zero-padded to ``max_audio_seconds``;
  valid mel frames ``L = min(max_s * sr // hop, samples // hop + 1)``; only ``[:, :L]`` is kept;
* ``inference_output_length``: ``enc = (L + 2*(k//2) - k) // 1 + 1`` then ``(enc + 2*(k//2) - k) // stride + 1``,
  ``bridge = enc // avg_pooler`` (floor); windows with ``bridge <= 0`` are skipped;
* the reference becomes ``<audio_start> + <audio_pad> × sum(bridge over its windows) + <audio_end>``;
* a list of texts is left-padded into ``input_ids`` / ``attention_mask``; ``audios`` is the mel windows
  zero-padded to the longest ``[n_windows, n_mels, frames]``, with ``encoder_length`` / ``bridge_length``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import torch
from transformers.audio_utils import mel_filter_bank


@dataclass
class OmniProcessorOutput:
    """Fields the model's ``forward``/``generate`` take (subset of the real dataclass)."""

    input_ids: Any = None
    attention_mask: Any = None
    audios: Any = None
    encoder_length: Any = None
    bridge_length: Any = None


class OmniAudioProcessor:
    """Waveform loading, windowing, log-mel features and output-length arithmetic."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.mel_filters = mel_filter_bank(
            num_frequency_bins=1 + config.n_fft // 2, num_mel_filters=config.num_mel_bins, min_frequency=0.0,
            max_frequency=config.sampling_rate / 2.0, sampling_rate=config.sampling_rate, norm="slaney",
            mel_scale="slaney")
        self.window = torch.hann_window(config.n_fft)

    def load_audio_waveform(self, uri: str) -> torch.Tensor:
        data, sr = sf.read(uri, dtype="float32", always_2d=True)
        if sr != self.config.sampling_rate:
            raise ValueError(f"{uri}: {sr} Hz; this stand-in does not resample")
        return torch.from_numpy(data.T.mean(0, keepdims=True))  # (1, samples)

    def split_with_overlap(self, waveform: torch.Tensor) -> list[torch.Tensor]:
        c = self.config
        n = waveform.shape[1]
        max_n = c.max_audio_seconds * c.sampling_rate
        if n <= max_n or c.split_overlap < 0:
            return [waveform]
        out, start, back = [], 0, int(c.sampling_rate * c.split_overlap)
        while start < n:
            if start > back:
                start -= back
            end = min(start + max_n, n)
            if end - start >= c.n_fft:
                out.append(waveform[:, start:end])
            start = end
        return out

    @classmethod
    def inference_output_length(cls, config: Any, input_length: int) -> tuple[int, int]:
        k, s = config.kernel_size, config.stride_size
        enc = (input_length + 2 * (k // 2) - k) // 1 + 1
        enc = (enc + 2 * (k // 2) - k) // s + 1
        return enc, enc // config.avg_pooler

    def extract_fbank_features(self, waveform: torch.Tensor) -> tuple[np.ndarray, int]:
        c = self.config
        n = waveform.shape[1]
        if n < c.n_fft:
            raise ValueError(f"window of {n} samples is shorter than n_fft={c.n_fft}")
        max_n = c.max_audio_seconds * c.sampling_rate
        valid = min(max_n // c.hop_length, n // c.hop_length + 1)
        wav = torch.nn.functional.pad(waveform, (0, max_n - n)) if n < max_n else waveform[:, :max_n]
        spec = torch.stft(wav, c.n_fft, c.hop_length, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        mel = torch.from_numpy(self.mel_filters).float().T @ power
        logm = torch.clamp(mel, min=1e-10).log10()
        logm = torch.maximum(logm, logm.max() - 8.0)
        feats = ((logm + 4.0) / 4.0)[0].numpy()
        feats[:, valid:] = 0.0
        return feats, valid


class OmniMMProcessor:
    """Text with audio references → token ids with the pad span, plus the audio tensors."""

    def __init__(self, tokenizer: Any, config: Any, training: bool = False, relative_path: str | None = None,
                 parallel: Any = None, **kwargs: Any) -> None:
        self.tokenizer, self.config, self.training = tokenizer, config, training
        self.relative_path = relative_path
        self.audio_processor = OmniAudioProcessor(config.audio_config)
        ac = config.audio_config
        self.audio_start_tag = tokenizer.convert_ids_to_tokens(ac.audio_start_token_id)
        self.audio_end_tag = tokenizer.convert_ids_to_tokens(ac.audio_end_token_id)
        self.audio_pad_tag = tokenizer.convert_ids_to_tokens(ac.audio_pad_token_id)

    def _get_audio(self, info: str) -> OmniProcessorOutput:
        ap = self.audio_processor
        wav = ap.load_audio_waveform(json.loads(info)["path"])
        feats, enc_l, br_l = [], [], []
        for w in ap.split_with_overlap(wav):
            mel, n = ap.extract_fbank_features(w)
            enc, br = ap.inference_output_length(self.config.audio_config, n)
            if br <= 0:
                continue
            feats.append(mel[:, :n])
            enc_l.append(enc)
            br_l.append(br)
        return OmniProcessorOutput(audios=feats or None, encoder_length=enc_l or None, bridge_length=br_l or None)

    def process_one(self, text: str) -> OmniProcessorOutput:
        pattern = re.compile(self.audio_start_tag + ".*?" + self.audio_end_tag, re.S)
        ids: list[int] = []
        ret = OmniProcessorOutput(audios=[], encoder_length=[], bridge_length=[])
        last = 0
        enc = self.tokenizer.encode
        for m in pattern.finditer(text):
            ids += enc(text[last:m.start()], add_special_tokens=False) if m.start() > last else []
            info = m.group(0)[len(self.audio_start_tag):-len(self.audio_end_tag)]
            try:
                a = self._get_audio(info)
            except Exception as err:  # the real processor prints the error and returns no input_ids
                print(f"**** get audio error: {err}, info: {info} *****")
                return OmniProcessorOutput()
            if a.bridge_length is None:
                return OmniProcessorOutput()
            ids += (enc(self.audio_start_tag, add_special_tokens=False)
                    + enc(self.audio_pad_tag, add_special_tokens=False) * sum(a.bridge_length)
                    + enc(self.audio_end_tag, add_special_tokens=False))
            ret.audios += a.audios
            ret.encoder_length += a.encoder_length
            ret.bridge_length += a.bridge_length
            last = m.end()
        ids += enc(text[last:], add_special_tokens=False) if last < len(text) else []
        ret.input_ids = ids
        return ret

    @torch.no_grad()
    def __call__(self, example: list[str]) -> OmniProcessorOutput:
        batch = [self.process_one(t) for t in example]
        assert all(b.input_ids is not None for b in batch)  # as strict as the real batch path
        self.tokenizer.padding_side = "left"
        pad = self.tokenizer.pad({"input_ids": [b.input_ids for b in batch]}, return_tensors="pt")
        out = OmniProcessorOutput(input_ids=pad["input_ids"], attention_mask=pad["attention_mask"])
        audios = [a for b in batch for a in b.audios]
        if audios:
            width = max(a.shape[-1] for a in audios)
            out.audios = torch.from_numpy(np.stack([np.pad(a, ((0, 0), (0, width - a.shape[-1]))) for a in audios]))
            out.encoder_length = torch.tensor([v for b in batch for v in b.encoder_length])
            out.bridge_length = torch.tensor([v for b in batch for v in b.bridge_length])
        return out
