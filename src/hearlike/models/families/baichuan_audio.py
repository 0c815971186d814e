"""Baichuan-Audio-Base / -Instruct (``baichuan-inc/Baichuan-Audio-{Base,Instruct}``, remote code, transformers 4.4x).

Data flow of the real remote code (what this adapter reads):

* audio enters the prompt as a file reference ``<audio_start_baichuan>{"path": ...}<audio_end_baichuan>``;
  ``model.bind_processor(tokenizer, training=False, relative_path="/")`` returns ``OmniMMProcessor``, which
  reads the file, cuts it into ``audio_config.max_audio_seconds`` windows (``split_with_overlap``; a later
  window starts ``split_overlap`` s before the previous end; windows < ``n_fft`` samples are dropped), makes
  Whisper log-mel features per window (valid mel frames ``L = min(max_s * sr // hop, samples // hop + 1)``)
  and expands the reference into ``start + pad × Σ bridge_length + end``;
* ``OmniAudioProcessor.inference_output_length``: ``encoder_length = (L - 1) // 2 + 1`` (conv k3 p1, then k3
  stride 2 p1), ``bridge_length = encoder_length // avg_pooler`` (floor; ``avg_pooler`` 4); windows with
  ``bridge_length <= 0`` are skipped;
* ``OmniForCausalLM.audio_tokenizer.audio_model`` (32-layer Whisper-large-style encoder, 128 mel, 50 Hz) runs
  its blocks on **packed** valid frames ``[Σ encoder_length, 1280]`` (flash-attn varlen), then its final
  LayerNorm; ``audio_tokenizer.audio_bridge_model`` merges 4 frames (kernel = stride = 4 convs) and
  quantises them with an 8-codebook RVQ → discrete codes. So the VQ bridge **is** on the LM input path: the
  LM sees, at each ``audio_pad_token_id`` position, the sum of the 8 code embeddings
  (``model.audio_embed_layers``), not continuous encoder features;
* ``OmniForCausalLM.model`` (28-layer Qwen2.5-7B-class LM, ``model.layers``) returns ``hidden_states`` =
  (embedding output, blocks 1…L-1, final-norm(block L)).

Stored layers: ``encoder.NN`` = hook outputs of ``audio_tokenizer.audio_model.layers[NN]`` (packed rows split
by ``encoder_length``), 50 Hz; ``llm.NN`` = ``hidden_states[NN+1]`` at the audio pad positions, 12.5 Hz, token
j of a window covering encoder frames ``[4j, 4j+4)`` = ``[offset + 0.08 j, offset + 0.08 j + 0.08)`` s. With
``split_overlap > 0`` the frames of a window that start before the previous window's end are dropped, so
times stay increasing. One clip per forward (``exact_batching = False``): the processor left-pads batches and
the model's ``forward`` does not shift position ids for padding.

Written against (read offline; the Hugging Face repos themselves could not be fetched here):

* github.com/baichuan-inc/Baichuan-Audio @ 805d456433dbf3e0edb2bdd302f733a4bd38ea84: ``web_demo/base_asr_demo.py``
  (loading with ``AutoModelForCausalLM`` + ``AutoTokenizer``, ``bind_processor``, the audio tags from
  ``config.audio_config.audio_{start,end}_token_id`` around ``json.dumps({"path": ...})``, the call
  ``model(input_ids, attention_mask, audios, encoder_length, bridge_length)``),
  ``web_demo/s2s_gradio_demo_cosy_multiturn.py`` + ``web_demo/constants.py`` (Instruct role tokens
  ``<B_SYS>``, ``<C_Q>`` user, ``<C_A>`` assistant), ``web_demo/generation.py`` (uses ``model.audio_tokenizer``,
  ``model.audio_head``, ``model.model.audio_embed_layers``: the module tree below matches it);
* copies of the remote code in the code index (repository not identifiable there, and lightly patched by
  whoever stored them: a ``BAICHUAN_OMNI_DISABLE_AUDIO`` switch, optional torchaudio import):
  ``modeling_omni.py`` (``OmniForCausalLM``, ``OmniModel.get_multimodal_embed``, ``OmniAudioTokenizer``),
  ``audio_modeling_omni.py`` (``OmniAudioEncoder``, ``OmniWhisperTransformerLayer``,
  ``OmniAudioVQBridgeTokenizer``), ``processor_omni.py`` (``OmniAudioProcessor``, ``OmniMMProcessor``),
  ``configuration_omni.py`` (``OmniConfig``; ``audio_config`` is a ``WhisperConfig``).

Not verified: the pinned HF revision's files themselves and its ``config.json`` values (``max_audio_seconds``,
``split_overlap``, ``kernel_size``, ``stride_size``, ``avg_pooler``, ``hop_length``, token ids); the adapter reads
all of them from the loaded config and checks the registry rates against them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.models.extract import (
    SR,
    Adapter,
    Clip,
    LayerOut,
    LayerTaps,
    _np,
    audio_token_positions,
    frame_times,
)
from hearlike.models.registry import ModelEntry

AUDIO_JSON = "{audio_json}"  # placeholder field replaced by json.dumps({"path": <clip wav>})


def load(entry: ModelEntry, model_dir: Path, *, device: str, dtype: Any) -> tuple[Any, Any]:
    """Model (``AutoModelForCausalLM``, remote code) and its bound ``OmniMMProcessor``, as the web demos load them."""
    import transformers as tf

    from hearlike.models.loaders import dtype_kwarg

    dtype_kw = dtype_kwarg()
    tok = tf.AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True, local_files_only=True)
    model = tf.AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True, local_files_only=True,
                                                    **{dtype_kw: dtype})
    model.to(device).eval()
    processor = model.bind_processor(tok, training=False, relative_path="/")
    return model, processor


def window_bounds(n: int, *, max_samples: int, overlap_samples: int, min_samples: int,
                  split: bool = True) -> list[tuple[int, int]]:
    """Sample bounds ``[(start, end), ...]`` of the processor's windows (its ``split_with_overlap`` rule)."""
    if n <= max_samples or not split:
        return [(0, n)]
    out, start = [], 0
    while start < n:
        if start > overlap_samples:
            start -= overlap_samples
        end = min(start + max_samples, n)
        if end - start >= min_samples:
            out.append((start, end))
        start = end
    return out


class BaichuanAudioAdapter(Adapter):
    """Encoder hooks + LM hidden states at the audio pad tokens, one clip (all its windows) per forward."""

    exact_batching = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ac = self.model.config.audio_config
        self.ac = ac
        self.pad_id = int(ac.audio_pad_token_id)
        if int(ac.sampling_rate) != SR:
            raise ValueError(f"{self.entry.key}: audio_config.sampling_rate {ac.sampling_rate}, expected {SR}")
        ph = self.entry.audio_placeholder or ""
        start, end = self.processor.audio_start_tag, self.processor.audio_end_tag
        if ph.count(AUDIO_JSON) != 1 or not ph.startswith(start) or not ph.endswith(end):
            raise ValueError(f"{self.entry.key}: audio_placeholder must be '{start}{AUDIO_JSON}{end}' (the tokenizer's "
                             f"audio tags around the audio file's JSON), got {ph!r}")
        enc_rate = SR / (ac.hop_length * ac.stride_size)
        rates = {"encoder": enc_rate, "llm": enc_rate / ac.avg_pooler}
        for g, t in self.entry.targets.items():
            if abs(float(t.rate_hz) - rates[g]) > 1e-9:
                raise ValueError(f"{self.entry.key}: registry {g} rate {t.rate_hz} Hz, the model's config gives "
                                 f"{rates[g]} Hz")
        w = self.settings["window_s"] or self.entry.window_s
        if w is not None and w < ac.max_audio_seconds:
            raise ValueError(f"{self.entry.key}: windows are the processor's {ac.max_audio_seconds} s "
                             f"(audio_config.max_audio_seconds); window_s {w} is not supported")

    def _windows(self, clip: Clip) -> list[tuple[int, int, int, int]]:
        """``(start, end, encoder_length, bridge_length)`` of the windows the processor keeps."""
        ac = self.ac
        bounds = window_bounds(len(clip.audio), max_samples=int(ac.max_audio_seconds * SR),
                               overlap_samples=int(SR * ac.split_overlap), min_samples=int(ac.n_fft),
                               split=ac.split_overlap >= 0)
        out = []
        for s0, s1 in bounds:
            mel = min(int(ac.max_audio_seconds * SR // ac.hop_length), (s1 - s0) // int(ac.hop_length) + 1)
            enc, br = self.processor.audio_processor.inference_output_length(ac, mel)
            if s1 - s0 >= int(ac.n_fft) and br > 0:
                out.append((s0, s1, int(enc), int(br)))
        if not out:
            raise ValueError(f"{self.entry.key}: sentence {clip.sid} ({clip.duration:.3f} s) is too short for "
                             f"Baichuan-Audio: no window reaches one audio token ({ac.avg_pooler} encoder frames)")
        return out

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        with tempfile.TemporaryDirectory(prefix="hearlike_baichuan_") as tmp:
            return [self._run_clip(c, Path(tmp)) for c in clips]

    def _run_clip(self, clip: Clip, tmp: Path) -> LayerOut:
        import soundfile as sf
        import torch

        wins = self._windows(clip)
        wav = tmp / f"s{clip.sid:04d}.wav"
        sf.write(str(wav), np.asarray(clip.audio, np.float32), SR, subtype="FLOAT")  # float WAV: samples kept exactly
        ph = self.entry.audio_placeholder.replace(AUDIO_JSON, json.dumps({"path": str(wav)}))
        ret = self.processor([self.entry.prompt.replace("{audio}", ph)])
        enc_n, tok_n = [w[2] for w in wins], [w[3] for w in wins]
        if ret.input_ids is None or ret.encoder_length is None or (
                [int(v) for v in ret.encoder_length], [int(v) for v in ret.bridge_length]) != (enc_n, tok_n):
            raise RuntimeError(f"{self.entry.key}: sentence {clip.sid}: the processor returned encoder/bridge lengths "
                               f"{getattr(ret, 'encoder_length', None)}/{getattr(ret, 'bridge_length', None)}, "
                               f"expected {enc_n}/{tok_n}")
        inputs = self._to_device({"input_ids": ret.input_ids, "attention_mask": ret.attention_mask,
                                  "audios": ret.audios, "encoder_length": ret.encoder_length,
                                  "bridge_length": ret.bridge_length})
        raw_llm = self.settings["llm_last_layer"] == "raw"
        enc_mods = self.layers["encoder"] if "encoder" in self.groups else []
        with torch.inference_mode(), LayerTaps(enc_mods, pre_first=self.emb) as et, \
                LayerTaps(self.layers["llm"] if raw_llm else []) as lt:
            out = self.model(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)
        # Per window: offset, end (s) and the time before which frames were already given by the previous window.
        spans, prev_end = [], 0.0
        for s0, s1, _, _ in wins:
            spans.append((s0 / SR, s1 / SR, prev_end))
            prev_end = s1 / SR
        res: LayerOut = {}
        if "encoder" in self.groups:
            t = self.entry.targets["encoder"]
            for name, packed in et.named("encoder"):
                if packed.shape[0] != sum(enc_n):
                    raise RuntimeError(f"{self.entry.key}: {name} has {packed.shape[0]} packed frames, "
                                       f"encoder_length sums to {sum(enc_n)}")
                parts = torch.split(packed, enc_n)
                res[name] = self._gather([_np(p) for p in parts], enc_n, spans, t.rate_hz, t.frame_length)
        if "llm" in self.groups:
            t = self.entry.targets["llm"]
            src = self.llm_sources(out.hidden_states, last=lt.single()[-1] if raw_llm else None)
            pos = audio_token_positions(ret.input_ids[0], self.pad_id)
            if len(pos) != sum(tok_n) or (len(pos) and pos[-1] - pos[0] != len(pos) - 1):
                raise RuntimeError(f"{self.entry.key}: sentence {clip.sid}: {len(pos)} audio pad tokens (contiguous: "
                                   f"{bool(len(pos)) and pos[-1] - pos[0] == len(pos) - 1}), expected {sum(tok_n)}")
            for name, h in src:
                parts = np.split(_np(h[0, pos]), np.cumsum(tok_n)[:-1])
                res[name] = self._gather(parts, tok_n, spans, t.rate_hz, t.frame_length)
        return res

    @staticmethod
    def _gather(parts: list[np.ndarray], counts: list[int], spans: list[tuple[float, float, float]],
                rate: float, flen: float) -> tuple[np.ndarray, np.ndarray]:
        """Concatenate per-window frames with their times (frames inside the clip, not repeated by an overlap)."""
        st, tm = [], []
        for arr, n, (off, end, seen) in zip(parts, counts, spans, strict=True):
            keep, times = frame_times(n, rate_hz=rate, frame_length_s=flen, offset_s=off, end_s=end)
            new = times[:, 0] >= seen - 1e-9
            st.append(arr[keep[new]])
            tm.append(times[new])
        return np.concatenate(st), np.concatenate(tm)


ADAPTER = BaichuanAudioAdapter
