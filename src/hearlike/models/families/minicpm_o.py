"""MiniCPM-o-2.6 (``openbmb/MiniCPM-o-2_6``, remote code, transformers 4.44 side environment).

Written against the remote code of the Hugging Face repo, read in copies (the hub itself was not reachable):

* ``modeling_minicpmo.py`` — github.com/jack139/minicpmo-backend ``modeling_minicpmo.py`` @ dced0af0 (a later
  hub revision: ``get_audio_embedding(..., dummy=True)``, ``input_embeddings[i, ...]``) and
  github.com/icyyrain/minicpmo-modified-files ``modeling_minicpmo.py`` @ 7838ae09 (an earlier one, where the
  ``chunk_input`` branch of ``get_omni_embedding`` writes ``input_embeddings[0, ...]`` for every sample). Read:
  ``MiniCPMO.__init__`` (``llm`` = Qwen2ForCausalLM, ``apm`` = MiniCPMWhisperEncoder, ``audio_avg_pooler`` =
  AvgPool1d(``audio_pool_step``), ``audio_projection_layer``, ``audio_encoder_layer = -1``),
  ``_get_feat_extract_output_lengths``, ``subsequent_chunk_mask``, ``get_vllm_embedding``,
  ``get_audio_embedding``, ``get_omni_embedding``, ``forward(data, **kwargs)``, ``generate``, ``chat``,
  ``MiniCPMWhisperEncoder(Layer).forward``.
* ``processing_minicpmo.py`` — icyyrain/minicpmo-modified-files @ 7838ae09 (``MiniCPMOProcessor.__call__``,
  ``audio_feature_extract``, ``_convert``, ``_convert_omni_to_inputs``, ``pad``), cross-checked with vLLM's copy.
* ``configuration_minicpm.py`` (``MiniCPMOConfig``: ``audio_pool_step=2``, ``audio_chunk_length=1.0``,
  ``init_vision/init_audio/init_tts``) and ``tokenization_minicpmo_fast.py`` (``<|audio_start|>``,
  ``<|audio_end|>``, ``<unk>``) — only in transformers-port copies (``MiniCPM_o_2_6Config``,
  ``MiniCPM_o_2_6TokenizerFast``) in the code index; same fields and token strings.

Data flow (one clip per forward, as ``chat`` does it):

* the processor cuts audio longer than 30 s into consecutive 30 s pieces (hard-coded ``30 * sampling_rate``),
  computes a Whisper log-mel per piece and trims it to its valid frames m_r = ceil(samples_r / 160); rows are
  zero-padded to the longest piece. ``(<audio>./</audio>)`` becomes, from the *whole* clip length,
  ``<|audio_start|>`` + ``<unk>`` × ≤ 25 + ``<|audio_end|>`` per 1 s chunk (``chunk_input``), and
  ``audio_bounds`` holds each chunk's ``[start + 1, end)`` in ``input_ids``;
* ``apm`` runs on the trimmed rows (no 30 s padding), masked by a padding mask (built by comparing encoder
  positions with the *mel* lengths, as the real code does) OR a block-causal 1 s chunk mask
  (``audio_chunk_length``); ``encoder.NN`` = forward-hook output of ``apm.layers[NN]``, valid frames
  e_r = (m_r - 1) // 2 + 1 at 50 Hz from the piece's start (r × 30 s);
* LN(block L) → projector → AvgPool1d(2) → t_r = (e_r - 2) // 2 + 1 tokens per piece at 25 Hz (token j covers
  frames 2j, 2j + 1); with ``config.chunk_input`` the pieces' tokens are concatenated and written in order over
  the bound spans, so the k-th audio slot of ``input_ids`` is token k of the clip (Σ t_r equals the placeholder
  count exactly, because full pieces have an even 3000 mel / 1500 encoder frames);
* ``llm.NN`` = ``hidden_states[NN + 1]`` of ``model(data, output_hidden_states=True)`` at those slots.

Not verified (no hub access): the pinned revision's ``config.json`` values (``chunk_input`` is read there and
assumed true, as ``chat(chunk_input=True)`` and vLLM use it; ``audio_chunk_length`` 1.0) and
``preprocessor_config.json`` (assumed default Whisper features: 80 mel, hop 160, 30 s); the exact hub
``README`` loading call (``attn_implementation="sdpa", init_vision/init_audio/init_tts``) is quoted from memory.
The real ``processing_minicpmo.py`` imports ``torchaudio`` at module level (its TTS mel class), so the side
environment needs a torchaudio matching its torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.models.extract import SR, Adapter, Clip, LayerOut, LayerTaps, _np, frame_times
from hearlike.models.registry import ModelEntry

PIECE_S = 30  # the processor's hard-coded split (max_audio_inp_len = 30 * sampling_rate)
HOP = 160     # Whisper feature extractor hop (mel frames at 100 Hz)


def load(entry: ModelEntry, model_dir: Path, *, device: str, dtype: Any) -> tuple[Any, Any]:
    """``AutoModel`` with the audio part only (vision and TTS are not needed and need extra packages)."""
    import transformers as tf

    from hearlike.models.loaders import dtype_kwarg

    dtype_kw = dtype_kwarg()
    model = tf.AutoModel.from_pretrained(model_dir, trust_remote_code=True, local_files_only=True,
                                         attn_implementation="sdpa", init_vision=False, init_audio=True,
                                         init_tts=False, **{dtype_kw: dtype})
    if type(model).__name__ != entry.model_class:
        raise TypeError(f"{entry.key}: {model_dir} loads {type(model).__name__}, registry says {entry.model_class}")
    processor = tf.AutoProcessor.from_pretrained(model_dir, trust_remote_code=True, local_files_only=True)
    model.to(device).eval()
    return model, processor


def _move(value: Any, device: str, dtype: Any) -> Any:
    """Tensors in (nested lists of) values to ``device``; floating ones to ``dtype``."""
    import torch

    if isinstance(value, list):
        return [_move(v, device, dtype) for v in value]
    if isinstance(value, torch.Tensor):
        return value.to(device, dtype) if value.is_floating_point() else value.to(device)
    return value


class MiniCPMOAdapter(Adapter):
    """One clip per forward through ``MiniCPMO.forward``; see the module docstring for the bookkeeping.

    Not batched: the earlier hub revision's ``get_omni_embedding`` writes every sample's audio into row 0.
    """

    exact_batching = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.model.config
        self.pool = int(cfg.audio_pool_step)
        self.chunk_input = bool(getattr(cfg, "chunk_input", True))
        te, tl = self.entry.targets["encoder"], self.entry.targets["llm"]
        if float(te.rate_hz) != 50.0 or float(tl.rate_hz) != 50.0 / self.pool:
            raise ValueError(f"{self.entry.key}: registry rates {te.rate_hz}/{tl.rate_hz} Hz do not match the "
                             f"model (50 Hz encoder, audio_pool_step {self.pool})")
        w = self.settings["window_s"] or self.entry.window_s
        if w is not None and float(w) != PIECE_S:
            raise ValueError(f"{self.entry.key}: the MiniCPM-o processor always splits audio into {PIECE_S} s pieces; "
                             f"window_s {w} is not supported")
        if self.entry.audio_placeholder != "(<audio>./</audio>)":
            raise ValueError(f"{self.entry.key}: audio_placeholder must be the processor's tag '(<audio>./</audio>)'")

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        return [self._run_one(c) for c in clips]

    def _run_one(self, clip: Clip) -> LayerOut:
        import torch

        te, tl = self.entry.targets["encoder"], self.entry.targets["llm"]
        prompt = self.entry.prompt.replace("{audio}", self.entry.audio_placeholder)
        inputs = self.processor(text=[prompt], audios=[[clip.audio]], chunk_input=self.chunk_input,
                                sampling_rate=SR, return_tensors="pt")
        mel = torch.hstack(list(inputs["audio_feature_lens"])).long()
        n_pieces = max(1, -(-len(clip.audio) // (PIECE_S * SR)))
        if len(mel) != n_pieces:
            raise RuntimeError(f"{self.entry.key}: processor made {len(mel)} audio pieces, expected {n_pieces}")
        enc_t, tok_t = self.model._get_feat_extract_output_lengths(mel)
        enc_n, tok_n = [int(v) for v in enc_t], [int(v) for v in tok_t]
        if sum(tok_n) < 1:
            raise ValueError(f"{self.entry.key}: sentence {clip.sid}: {len(clip.audio)} samples give no audio token "
                             f"(need more than {2 * HOP} samples)")
        bounds = inputs["audio_bounds"][0].tolist()
        pos = np.concatenate([np.arange(s, e) for s, e in bounds]) if bounds else np.zeros(0, dtype=np.int64)
        if len(pos) != sum(tok_n):
            raise RuntimeError(f"{self.entry.key}: sentence {clip.sid}: {len(pos)} audio slots in input_ids, "
                               f"the encoder gives {sum(tok_n)} tokens")
        data = dict(inputs)
        # forward() reads position_ids from data; one unpadded row, so they are 0..n-1 (no attention mask needed).
        data["position_ids"] = torch.arange(inputs["input_ids"].shape[1], dtype=torch.long)[None]
        data = {k: _move(v, self.device, self.dtype) for k, v in data.items()}
        raw_llm = self.settings["llm_last_layer"] == "raw"
        with torch.inference_mode(), LayerTaps(self.layers["encoder"], pre_first=self.emb) as et, \
                LayerTaps(self.layers["llm"] if raw_llm else []) as lt:
            out = self.model(data, output_hidden_states=True, use_cache=False)
        dur = clip.duration
        spans = [(r * PIECE_S, min((r + 1) * PIECE_S, dur)) for r in range(n_pieces)]
        result: LayerOut = {}
        if "encoder" in self.groups:
            parts = [frame_times(n, rate_hz=te.rate_hz, frame_length_s=te.frame_length, offset_s=o, end_s=e)
                     for n, (o, e) in zip(enc_n, spans, strict=True)]
            times = np.concatenate([t for _, t in parts])
            for name, h in et.named("encoder"):
                arr = _np(h)
                result[name] = (np.concatenate([arr[r, k] for r, (k, _) in enumerate(parts)]), times)
        if "llm" in self.groups:
            src = self.llm_sources(out.hidden_states, last=lt.single()[-1] if raw_llm else None)
            sel, tms, start = [], [], 0
            for n, (o, e) in zip(tok_n, spans, strict=True):
                keep, t = frame_times(n, rate_hz=tl.rate_hz, frame_length_s=tl.frame_length, offset_s=o, end_s=e)
                sel.append(pos[start + keep])
                tms.append(t)
                start += n
            idx, times = np.concatenate(sel), np.concatenate(tms)
            for name, h in src:
                result[name] = (_np(h[0, idx]), times)
        return result


ADAPTER = MiniCPMOAdapter
