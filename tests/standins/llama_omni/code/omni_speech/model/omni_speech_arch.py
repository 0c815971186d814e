"""Stand-in of ``omni_speech/model/omni_speech_arch.py`` (own code; same names, signatures and bookkeeping).

``encode_speech``: encoder on ``speech.permute(0, 2, 1)``; lengths ``(L + 1) // 2`` then ``// k``; features
cut to those lengths. ``prepare_inputs_labels_for_speech_and_text``: rows stripped of padding by the
attention mask; each ``SPEECH_TOKEN_INDEX`` replaced in place by the next speech item's features (items
consumed in batch-row order); speech labels ``IGNORE_INDEX``; optional cut to
``config.tokenizer_model_max_length``; re-padded on ``config.tokenizer_padding_side`` (default right) with
zeros, mask and position ids rebuilt; returns ``(None, position_ids, attention_mask, past_key_values,
inputs_embeds, labels)`` with None for the inputs that were None.
"""

from abc import ABC, abstractmethod

import torch
from omni_speech.constants import IGNORE_INDEX, SPEECH_TOKEN_INDEX

from .speech_encoder.builder import build_speech_encoder
from .speech_projector.builder import build_speech_projector


class OmniSpeechMetaModel:
    def __init__(self, config):
        super().__init__(config)
        if hasattr(config, "speech_encoder"):
            self.speech_encoder = build_speech_encoder(config)
            self.speech_projector = build_speech_projector(config)

    def get_speech_encoder(self):
        enc = getattr(self, "speech_encoder", None)
        return enc[0] if isinstance(enc, list) else enc


class OmniSpeechMetaForCausalLM(ABC):
    @abstractmethod
    def get_model(self):
        pass

    def get_speech_encoder(self):
        return self.get_model().get_speech_encoder()

    def get_speech_projector(self):
        return self.get_model().speech_projector

    def encode_speech(self, speech, speech_lengths):
        if "whisper" not in self.config.speech_encoder_type.lower():
            raise ValueError(f"Unknown speech encoder: {self.config.speech_encoder_type}")
        out = self.get_speech_encoder()(speech.permute(0, 2, 1))
        lengths = (speech_lengths + 1) // 2
        if self.config.speech_projector_type != "linear":
            raise ValueError(f"Unknown speech projector: {self.config.speech_projector_type}")
        proj = self.get_speech_projector()
        out = proj(out)
        lengths = lengths // proj.k
        return [out[i, :lengths[i]] for i in range(len(out))]

    def prepare_inputs_labels_for_speech_and_text(self, input_ids, position_ids, attention_mask, past_key_values,
                                                  labels, speech, speech_lengths):
        if self.get_speech_encoder() is None or speech is None or input_ids.shape[1] == 1:
            return input_ids, position_ids, attention_mask, past_key_values, None, labels
        feats = self.encode_speech(speech, speech_lengths)
        given_labels, given_pos, given_mask = labels, position_ids, attention_mask
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        if labels is None:
            labels = torch.full_like(input_ids, IGNORE_INDEX)
        pos_dtype = torch.long if position_ids is None else position_ids.dtype
        embed = self.get_model().embed_tokens
        rows, row_labels, k = [], [], 0
        kept_ids = [r[m] for r, m in zip(input_ids, mask, strict=True)]
        kept_labels = [r[m] for r, m in zip(labels, mask, strict=True)]
        for ids, lab in zip(kept_ids, kept_labels, strict=True):
            cuts = [-1, *torch.where(ids == SPEECH_TOKEN_INDEX)[0].tolist(), ids.shape[0]]
            parts, part_labels = [], []
            for j in range(len(cuts) - 1):
                seg = ids[cuts[j] + 1:cuts[j + 1]]
                parts.append(embed(seg))
                part_labels.append(lab[cuts[j] + 1:cuts[j + 1]])
                if j < len(cuts) - 2:
                    f = feats[k]
                    k += 1
                    parts.append(f)
                    part_labels.append(torch.full((f.shape[0],), IGNORE_INDEX, dtype=lab.dtype, device=lab.device))
            if len(cuts) == 2:  # no speech in this row: its speech item is consumed all the same
                parts.append(feats[k][0:0])
                k += 1
            rows.append(torch.cat([p.to(self.device) for p in parts]))
            row_labels.append(torch.cat(part_labels))
        limit = getattr(self.config, "tokenizer_model_max_length", None)
        if limit is not None:
            rows = [r[:limit] for r in rows]
            row_labels = [r[:limit] for r in row_labels]
        n, width = len(rows), max(r.shape[0] for r in rows)
        left = getattr(self.config, "tokenizer_padding_side", "right") == "left"
        embeds = rows[0].new_zeros((n, width, rows[0].shape[1]))
        out_labels = torch.full((n, width), IGNORE_INDEX, dtype=row_labels[0].dtype, device=row_labels[0].device)
        out_mask = torch.zeros((n, width), dtype=mask.dtype, device=mask.device)
        out_pos = torch.zeros((n, width), dtype=pos_dtype, device=input_ids.device)
        for i, (r, lab) in enumerate(zip(rows, row_labels, strict=True)):
            sl = slice(width - r.shape[0], width) if left else slice(0, r.shape[0])
            embeds[i, sl] = r
            out_labels[i, sl] = lab
            out_mask[i, sl] = True
            out_pos[i, sl] = torch.arange(r.shape[0], dtype=pos_dtype, device=input_ids.device)
        return (None, None if given_pos is None else out_pos,
                None if given_mask is None else out_mask.to(given_mask.dtype), past_key_values, embeds,
                None if given_labels is None else out_labels)
