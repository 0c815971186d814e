"""Stand-in for MiniCPM-o-2.6's ``processing_minicpmo.py`` (project-written; see README.md).

Bookkeeping kept from the real processor:

* audio longer than 30 s (``30 * sampling_rate`` samples) is cut into consecutive 30 s pieces; every piece goes
  through the Whisper feature extractor with ``padding="max_length"`` and is trimmed to its valid mel frames
  (``attention_mask.sum()`` = ceil(samples / hop)); rows are then right-padded with 0.0 to the longest piece;
* the ``(<audio>./</audio>)`` tag is replaced, from the *whole* clip length, by
  ``<|audio_start|>`` + ``<unk>`` × n + ``<|audio_end|>`` with n = ((ceil(len / hop) - 1) // 2 + 1 - 2) // 2 + 1,
  split into 1 s chunks of at most 25 ``<unk>`` when ``chunk_input``;
* ``audio_bounds`` = (index of each audio start token + 1, index of its end token), shifted by left padding.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch
from transformers import ProcessorMixin

from .image_processing_minicpmv import MiniCPMOBatchFeature

AUDIO_TAG = "(<audio>./</audio>)"
_SPLIT = re.compile(r"(\(<image>./</image>\)|\(<audio>./</audio>\))")


class MiniCPMOProcessor(ProcessorMixin):
    """Image processor (unused) + Whisper feature extractor + tokenizer."""

    attributes = ["image_processor", "feature_extractor", "tokenizer"]  # noqa: RUF012 - as in the real class
    feature_extractor_class = "WhisperFeatureExtractor"
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor: Any = None, feature_extractor: Any = None, tokenizer: Any = None) -> None:
        super().__init__(image_processor, feature_extractor, tokenizer)
        self.version = image_processor.version

    def __call__(self, text: str | list[str], images: Any = None, audios: Any = None, audio_parts: list | None = None,
                 max_length: int | None = None, do_pad: bool | None = True, max_slice_nums: int | None = None,
                 use_image_id: bool = True, chunk_input: bool = False, return_tensors: Any = "pt",
                 sampling_rate: int | None = 16000, **kwargs: Any) -> MiniCPMOBatchFeature:
        if images is not None:
            raise NotImplementedError("stand-in has no image path")
        if audios is not None:
            feats, lens, phs = self.audio_feature_extract(audios, audio_parts, chunk_input, sampling_rate)
        else:
            feats, lens, phs = [], [], []
        inputs = self._convert_omni_to_inputs(None, phs, text, max_length=max_length, **kwargs)
        inputs["audio_features"] = feats
        inputs["audio_feature_lens"] = lens
        return MiniCPMOBatchFeature(data={**inputs})

    def _placeholder(self, n_samples: int, chunk_input: bool, chunk_length: float) -> str:
        step = 2
        n_tok = ((math.ceil(n_samples / self.feature_extractor.hop_length) - 1) // 2 + 1 - step) // step + 1
        start, end = self.tokenizer.audio_start, self.tokenizer.audio_end
        if not chunk_input:
            return start + "<unk>" * n_tok + end
        per_chunk = ((int(chunk_length * 100) - 1) // 2 + 1 - step) // step + 1
        sizes = [min(per_chunk, n_tok - k) for k in range(0, n_tok, per_chunk)]
        return "".join(start + "<unk>" * s + end for s in sizes)

    def audio_feature_extract(self, audios: Any, audio_parts: list | None = None, chunk_input: bool | None = False,
                              sampling_rate: int | None = None, chunk_length: float | None = 1, **kwargs: Any
                              ) -> tuple[Any, list[Any], list[list[str]]]:
        if isinstance(audios, np.ndarray):
            per_text = [[audios]]
        elif isinstance(audios[0], np.ndarray):
            per_text = [audios]
        else:
            per_text = audios
        if audio_parts is not None:
            raise NotImplementedError("stand-in: audio_parts merging is not modelled")
        phs = [[self._placeholder(len(a), bool(chunk_input), float(chunk_length)) for a in al] for al in per_text]
        rows: list[torch.Tensor] = []
        lens_list: list[Any] = []
        max_len = 30 * sampling_rate
        for al in per_text:
            if not al:
                lens_list.append([])
                continue
            pieces = []
            for a in al:
                pieces += [a[i:i + max_len] for i in range(0, len(a), max_len)] if len(a) > max_len else [a]
            fe = self.feature_extractor(pieces, sampling_rate=sampling_rate, return_attention_mask=True,
                                        padding="max_length", return_tensors="pt", **kwargs)
            valid = fe["attention_mask"].sum(dim=1)
            rows += [f[:, :n] for f, n in zip(fe["input_features"], valid, strict=True)]
            lens_list.append(torch.hstack(list(valid)))
        if not rows:
            return [], lens_list, phs
        padded = torch.nn.utils.rnn.pad_sequence([r.T for r in rows], batch_first=True, padding_value=0.0)
        return padded.permute(0, 2, 1), lens_list, phs

    def _convert(self, input_str: str, max_inp_length: int | None = None, **kwargs: Any
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = self.tokenizer.encode(input_str, **kwargs)
        if max_inp_length is not None:
            ids = ids[:max_inp_length]
        ids_t = torch.tensor(ids, dtype=torch.int32)
        tok = self.tokenizer

        def bounds(start_id: int, end_id: int) -> torch.Tensor:
            s = torch.where(ids_t == start_id)[0]
            e = torch.where(ids_t == end_id)[0]
            if len(s) != len(e):
                raise AssertionError("unbalanced start/end tokens")
            return torch.stack([s + 1, e], dim=1) if len(s) else torch.zeros((0, 2), dtype=torch.int64)

        image_bounds = torch.zeros((0, 2), dtype=torch.int64)
        if bool(((ids_t == tok.im_start_id) | (ids_t == tok.slice_start_id)).any()):
            raise NotImplementedError("stand-in has no image path")
        return ids_t, image_bounds, bounds(tok.audio_start_id, tok.audio_end_id), bounds(tok.spk_start_id, tok.spk_end_id)

    def _convert_omni_to_inputs(self, images: Any, audio_phs: list[list[str]], texts: str | list[str],
                                truncation: Any = None, max_length: int | None = None, max_slice_nums: Any = None,
                                use_image_id: Any = None, return_tensors: Any = None, **kwargs: Any) -> dict[str, Any]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        bs = len(texts)
        ids_list, audio_b, spk_b, image_b = [], [], [], []
        for i, text in enumerate(texts):
            chunks = _SPLIT.split(text)
            n_tags = sum(c == AUDIO_TAG for c in chunks)
            if n_tags and n_tags != len(audio_phs[i]):
                raise AssertionError(f"{n_tags} audio tags for {len(audio_phs[i])} audios")
            k = 0
            for j, c in enumerate(chunks):
                if c == AUDIO_TAG:
                    chunks[j] = audio_phs[i][k]
                    k += 1
            ids, ib, ab, sb = self._convert("".join(chunks), max_length, **kwargs)
            ids_list.append(ids)
            image_b.append(ib)
            audio_b.append(ab)
            spk_b.append(sb)
        padded, pad_lens = self.pad(ids_list, padding_side="left")
        attention_mask = torch.ones_like(padded, dtype=torch.bool)
        for i, n in enumerate(pad_lens):
            image_b[i] = image_b[i] + n
            audio_b[i] = audio_b[i] + n
            spk_b[i] = spk_b[i] + n
            attention_mask[i, :n] = False
        return {"input_ids": padded, "attention_mask": attention_mask, "pixel_values": [[]] * bs,
                "image_sizes": [[]] * bs, "image_bound": image_b, "tgt_sizes": [[]] * bs,
                "audio_bounds": audio_b, "spk_bounds": spk_b}

    def pad(self, inputs: list[torch.Tensor], max_length: int | None = None, padding_value: int = 0,
            padding_side: str = "left") -> tuple[torch.Tensor, list[int]]:
        n = max([max_length or 0] + [len(x) for x in inputs])
        out = torch.full((len(inputs), n), padding_value, dtype=inputs[0].dtype)
        for i, x in enumerate(inputs):
            if padding_side == "left":
                out[i, n - len(x):] = x
            else:
                out[i, :len(x)] = x
        return out, [n - len(x) for x in inputs]
