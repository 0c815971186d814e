"""Layer-wise activation extraction: one forward pass per sentence (batched where exact), hooks, timestamps.

What is stored (see also ``docs``-level contract in ``hearlike.models.cache``):

* ``encoder.NN`` — the raw output of audio-encoder block NN+1, captured by forward hooks on the encoder's
  layer modules **during the model's own forward** (so with the same padding mask the LM consumes). This
  avoids the three transformers-5 pitfalls: ``hidden_states[-1]`` of Qwen2-Audio/AF3 towers is the pooled,
  LayerNormed 25 Hz output; top-level ``output_hidden_states`` returns only LM states; a direct tower call
  without the padding mask gives different states. No final encoder LayerNorm is applied to any layer.
* ``llm.NN`` — the LM's ``hidden_states[NN + 1]`` (outputs of blocks 1…L, not the embedding output) at the
  audio-token positions only. With the default ``llm_last_layer: post_norm`` the last layer is, as in
  ``hidden_states``, *after* the LM's final norm; ``llm_last_layer: raw`` stores the raw block-L output (hook).
* Times: frame k of a stack with rate r covers ``[offset + k / r, offset + k / r + frame_length)`` seconds
  from the sentence onset (end clipped to the clip duration), where ``offset`` is the start of its 30 s
  window; only frames that start inside the clip are kept (Whisper-style encoders pad every window to 30 s).
"""

from __future__ import annotations

import logging
import math
import resource
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.models.cache import (
    FP16_MAX,
    CacheCorruptedError,
    key_sha256,
    load_manifest,
    verify_cache,
    write_layer,
    write_manifest,
)
from hearlike.models.registry import GROUPS, ModelEntry, get_entry, layer_table

log = logging.getLogger("hearlike.models.extract")
SR = 16000
DEFAULT_SETTINGS: dict[str, Any] = {
    "llm_last_layer": "post_norm",  # or "raw": block-L output before the LM's final norm
    "store_dtype": "float16",        # float32 if activations exceed the float16 range
    "window_s": None,                # None: registry window_s, capped at the feature extractor's chunk length
    "targets": None,                 # None: all registry targets; else a subset of ["encoder", "llm"]
    "dtype": None,                   # None: registry dtype
    "store_embedding_layer": False,  # also store "<group>.emb" (input of block 1); listed under extra_layers
}


# ----------------------------------------------------------------------------------- utilities
def merge_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults updated with ``settings``; unknown keys are an error (typos must not pass silently)."""
    out = dict(DEFAULT_SETTINGS)
    for k, v in dict(settings or {}).items():
        if k not in out:
            raise ValueError(f"unknown extraction setting {k!r}; known: {sorted(out)}")
        out[k] = v
    if out["llm_last_layer"] not in ("post_norm", "raw"):
        raise ValueError("llm_last_layer must be 'post_norm' or 'raw'")
    if out["store_dtype"] not in ("float16", "float32"):
        raise ValueError("store_dtype must be 'float16' or 'float32'")
    if out["targets"] is not None:
        out["targets"] = sorted(set(out["targets"]), key=GROUPS.index)
    return out


def resolve_module(root: Any, dotted: str) -> Any:
    """``root.a.b.c`` from ``"a.b.c"`` with an error that names the missing part."""
    obj = root
    for part in dotted.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"{type(root).__name__} has no module {dotted!r} (missing {part!r}); "
                                 "fix targets.*.modules in the registry")
        obj = getattr(obj, part)
    return obj


class LayerTaps:
    """Forward hooks on a list of layer modules; ``outputs[i]`` is layer i's output (first tuple item).

    With ``pre_first`` the input of the first module (the embedding output fed to block 1) is kept too.
    """

    def __init__(self, modules: Sequence[Any], *, pre_first: bool = False) -> None:
        self.modules = list(modules)
        self.outputs: list[list[Any]] = [[] for _ in self.modules]
        self.first_inputs: list[Any] = []
        self.pre_first = bool(pre_first) and bool(self.modules)
        self._handles: list[Any] = []

    def _pre_hook(self, _module: Any, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs.get("hidden_states")
        self.first_inputs.append(x.detach())

    def _hook(self, i: int) -> Any:
        def fn(_module: Any, _inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, tuple | list) else output
            self.outputs[i].append(out.detach())
        return fn

    def __enter__(self) -> LayerTaps:
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.modules)]
        if self.pre_first:
            self._handles.append(self.modules[0].register_forward_pre_hook(self._pre_hook, with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def single(self) -> list[Any]:
        """One output per layer (error if a layer ran more or less than once)."""
        bad = [i for i, o in enumerate(self.outputs) if len(o) != 1]
        if bad:
            raise RuntimeError(f"hooked layers {bad} ran {[len(self.outputs[i]) for i in bad]} times in one forward")
        return [o[0] for o in self.outputs]

    def named(self, group: str) -> list[tuple[str, Any]]:
        """``[(group.emb, input of block 1)?, (group.00, block 1 output), ...]``."""
        out = [(f"{group}.{i:02d}", t) for i, t in enumerate(self.single())]
        if self.pre_first:
            if len(self.first_inputs) != 1:
                raise RuntimeError(f"first {group} layer ran {len(self.first_inputs)} times in one forward")
            out.insert(0, (f"{group}.emb", self.first_inputs[0]))
        return out


def split_windows(audio: np.ndarray, window_s: float | None) -> list[tuple[float, np.ndarray]]:
    """``[(offset_s, segment), ...]``: consecutive windows of at most ``window_s`` (one if None)."""
    if window_s is None or len(audio) <= round(window_s * SR):
        return [(0.0, audio)]
    w = round(window_s * SR)
    return [(i / SR, audio[i:i + w]) for i in range(0, len(audio), w)]


def frame_times(n: int, *, rate_hz: float, frame_length_s: float, offset_s: float, end_s: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(keep_index, times)`` of ``n`` frames: keep frames starting before ``end_s``; clip ends to ``end_s``."""
    k = np.arange(n, dtype=np.float64)
    start = offset_s + k / float(rate_hz)
    keep = np.flatnonzero(start < end_s - 1e-9)
    start = start[keep]
    end = np.minimum(start + frame_length_s, end_s)
    return keep, np.stack([start, end], axis=1) if len(keep) else np.zeros((0, 2))


def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy()


@dataclass
class Clip:
    """One sentence's audio."""

    sid: int
    audio: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.audio) / SR


LayerOut = dict[str, tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------ adapters
class Adapter:
    """Base class: runs a batch of clips, returns per clip ``{layer_name: (states, times)}``."""

    exact_batching = True

    def __init__(self, entry: ModelEntry, model: Any, processor: Any, *, device: str, dtype: Any,
                 settings: Mapping[str, Any]) -> None:
        self.entry, self.model, self.processor = entry, model, processor
        self.device, self.dtype, self.settings = device, dtype, settings
        groups = settings["targets"] or list(entry.targets)
        missing = [g for g in groups if g not in entry.targets]
        if missing:
            raise ValueError(f"{entry.key}: settings.targets {missing} not in the registry targets")
        self.groups = [g for g in GROUPS if g in groups]
        self.layers = {g: list(resolve_module(model, entry.targets[g].modules)) for g in entry.targets}
        for g, mods in self.layers.items():
            if len(mods) != entry.targets[g].n_layers:
                raise ValueError(f"{entry.key}: {entry.targets[g].modules} has {len(mods)} layers, registry says "
                                 f"{entry.targets[g].n_layers}")

    @property
    def emb(self) -> bool:
        return bool(self.settings["store_embedding_layer"])

    def window_s(self, chunk_s: float | None) -> float | None:
        w = self.settings["window_s"] or self.entry.window_s
        if chunk_s is not None:
            w = chunk_s if w is None else min(w, chunk_s)
        return w

    def _to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device)
                if v.is_floating_point():
                    v = v.to(self.dtype)
            out[k] = v
        return out

    def _name(self, group: str, i: int) -> str:
        return f"{group}.{i:02d}"

    def llm_sources(self, hidden_states: Sequence[Any], *, last: Any = None) -> list[tuple[str, Any]]:
        """Named LM layers ``[(llm.emb, hidden_states[0])?, (llm.00, hidden_states[1]), ...]``.

        ``last`` replaces the last layer (the hooked raw block output for ``llm_last_layer: raw``, or a hooked
        final norm where ``hidden_states[-1]`` is pre-norm). The count is checked against the registry.
        """
        n = self.entry.targets["llm"].n_layers
        if len(hidden_states) != n + 1:
            raise ValueError(f"{self.entry.key}: LM returned {len(hidden_states)} hidden states, registry says "
                             f"{n} layers")
        src = [(self._name("llm", i), h) for i, h in enumerate(hidden_states[1:])]
        if last is not None:
            src[-1] = (src[-1][0], last)
        if self.emb:
            src.insert(0, ("llm.emb", hidden_states[0]))
        return src

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:  # pragma: no cover - abstract
        raise NotImplementedError


class EncoderOnlyAdapter(Adapter):
    """Speech encoders: every window of every clip is one batch row; frames concatenated per clip."""

    def _forward(self, segments: list[np.ndarray]) -> tuple[list[Any], list[int]]:
        raise NotImplementedError

    def _chunk_s(self) -> float | None:
        return None

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        import torch

        t = self.entry.targets["encoder"]
        win = self.window_s(self._chunk_s())
        rows = [(ci, off, seg) for ci, c in enumerate(clips) for off, seg in split_windows(c.audio, win)]
        with torch.inference_mode(), LayerTaps(self.layers["encoder"], pre_first=self.emb) as taps:
            n_valid = self._forward([seg for _, _, seg in rows])
        outs = [(name, _np(o)) for name, o in taps.named("encoder")]
        results: list[LayerOut] = [{} for _ in clips]
        for ci in range(len(clips)):
            parts = [(r, off, seg) for r, (cj, off, seg) in enumerate(rows) if cj == ci]
            for name, arr in outs:
                st, tm = [], []
                for r, off, seg in parts:
                    keep, times = frame_times(n_valid[r], rate_hz=t.rate_hz, frame_length_s=t.frame_length,
                                              offset_s=off, end_s=off + len(seg) / SR)
                    st.append(arr[r, keep])
                    tm.append(times)
                results[ci][name] = (np.concatenate(st), np.concatenate(tm))
        return results


class WhisperEncoderAdapter(EncoderOnlyAdapter):
    """Whisper encoder: 30 s log-mel windows (padded), 50 Hz frames, valid = ceil(mel frames / 2)."""

    def _chunk_s(self) -> float | None:
        return float(self.processor.chunk_length)

    def _forward(self, segments: list[np.ndarray]) -> tuple[list[Any], list[int]]:
        fe = self.processor(segments, sampling_rate=SR, return_attention_mask=True, return_tensors="pt")
        encoder = self.model.get_encoder() if hasattr(self.model, "get_encoder") else self.model
        encoder(fe["input_features"].to(self.device, self.dtype))
        mel = fe["attention_mask"].sum(-1)
        return [int(v) for v in (mel - 1) // 2 + 1]


class Wav2Vec2LikeAdapter(EncoderOnlyAdapter):
    """wav2vec2 / HuBERT / WavLM: raw waveform, conv frames (20 ms hop, 25 ms receptive field)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Zero-padding changes group-norm models' states; only masked (layer-norm) models batch exactly.
        self.use_mask = bool(getattr(self.processor, "return_attention_mask", False))
        self.exact_batching = self.use_mask

    def _forward(self, segments: list[np.ndarray]) -> tuple[list[Any], list[int]]:
        import torch

        fe = self.processor(segments, sampling_rate=SR, padding=True, return_attention_mask=self.use_mask,
                            return_tensors="pt")
        kwargs = {"attention_mask": fe["attention_mask"].to(self.device)} if self.use_mask else {}
        self.model(fe["input_values"].to(self.device, self.dtype), **kwargs)
        lengths = torch.tensor([len(s) for s in segments])
        return [int(v) for v in self.model._get_feat_extract_output_lengths(lengths)]


class PlaceholderLLMAdapter(Adapter):
    """Audio LLMs whose processor expands one placeholder per audio into N audio tokens (Qwen2-Audio, AF3).

    Each clip's windows become consecutive placeholders of one prompt, so the LM sees the whole sentence.
    """

    mask_key = "feature_attention_mask"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Right padding keeps every valid token's position id equal to the unbatched run.
        self.processor.tokenizer.padding_side = "right"
        self.audio_token_id = int(self._audio_token_id())

    def _audio_token_id(self) -> int:
        cfg = self.model.config
        tid = getattr(cfg, "audio_token_id", None)
        if tid is None:
            tid = getattr(cfg, "audio_token_index", None)
        if tid is None:
            raise ValueError(f"{self.entry.key}: model config has no audio_token_id")
        return tid

    def _chunk_s(self) -> float | None:
        fe = getattr(self.processor, "feature_extractor", None)
        return float(fe.chunk_length) if fe is not None and hasattr(fe, "chunk_length") else None

    def _prompt(self, n_windows: int) -> str:
        ph = "".join(self.entry.audio_placeholder.replace("{n}", str(i + 1)) for i in range(n_windows))
        return self.entry.prompt.replace("{audio}", ph)

    def _audio_list(self, clips: Sequence[Clip], per_clip: list[list[tuple[float, np.ndarray]]]
                    ) -> list[np.ndarray]:
        """Audio handed to the processor: one item per window (one placeholder each)."""
        return [seg for w in per_clip for _, seg in w]

    def _process(self, texts: list[str], audios: list[np.ndarray]) -> Any:
        # Text: right padding (valid tokens keep their unbatched positions). Audio: no padding argument,
        # so the Whisper feature extractor keeps its own pad-to-window (the towers need exactly 30 s).
        return self.processor(text=texts, audio=audios, sampling_rate=SR, return_tensors="pt",
                              text_kwargs={"padding": True, "padding_side": "right"})

    def _enc_and_tok_counts(self, inputs: Mapping[str, Any], n_rows: int) -> tuple[list[int], list[int]]:
        """Valid encoder frames and audio tokens per audio window (Whisper-style conv + ×2 avg-pool)."""
        mel = inputs[self.mask_key].sum(-1)
        enc = (mel - 1) // 2 + 1
        tok = (enc - 2) // 2 + 1
        return [int(v) for v in enc], [int(v) for v in tok]

    def _forward(self, inputs: dict[str, Any]) -> Any:
        return self.model(**inputs, output_hidden_states=True, use_cache=False)

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        import torch

        win = self.window_s(self._chunk_s())
        per_clip = [split_windows(c.audio, win) for c in clips]
        texts = [self._prompt(len(w)) for w in per_clip]
        inputs = self._process(texts, self._audio_list(clips, per_clip))
        enc_n, tok_n = self._enc_and_tok_counts(inputs, sum(len(w) for w in per_clip))
        input_ids = inputs["input_ids"]
        raw_llm = self.settings["llm_last_layer"] == "raw"
        with torch.inference_mode(), LayerTaps(self.layers["encoder"], pre_first=self.emb) as et, \
                LayerTaps(self.layers["llm"] if raw_llm else []) as lt:
            out = self._forward(self._to_device(inputs))
        return self._collect(clips, per_clip, input_ids, enc_n, tok_n, et, lt, out, raw_llm)

    def _collect(self, clips: Sequence[Clip], per_clip: list[list[tuple[float, np.ndarray]]], input_ids: Any,
                 enc_n: list[int], tok_n: list[int], et: LayerTaps, lt: LayerTaps, out: Any, raw_llm: bool
                 ) -> list[LayerOut]:
        te, tl = self.entry.targets["encoder"], self.entry.targets["llm"]
        enc_outs = [(name, _np(o)) for name, o in et.named("encoder")] if "encoder" in self.groups else []
        llm_src = self.llm_sources(out.hidden_states, last=lt.single()[-1] if raw_llm else None)
        results: list[LayerOut] = [{} for _ in clips]
        row = 0
        for ci, wins in enumerate(per_clip):
            rows = list(range(row, row + len(wins)))
            row += len(wins)
            if "encoder" in self.groups:
                for name, arr in enc_outs:
                    st, tm = [], []
                    for r, (off, seg) in zip(rows, wins, strict=True):
                        keep, times = frame_times(enc_n[r], rate_hz=te.rate_hz, frame_length_s=te.frame_length,
                                                  offset_s=off, end_s=off + len(seg) / SR)
                        st.append(arr[r, keep])
                        tm.append(times)
                    results[ci][name] = (np.concatenate(st), np.concatenate(tm))
            if "llm" in self.groups:
                pos = audio_token_positions(input_ids[ci], self.audio_token_id)
                want = sum(tok_n[r] for r in rows)
                if len(pos) != want:
                    raise RuntimeError(f"{self.entry.key}: sentence {clips[ci].sid}: {len(pos)} audio tokens in "
                                       f"input_ids, expected {want}")
                sel, tm, start = [], [], 0
                for r, (off, seg) in zip(rows, wins, strict=True):
                    p = pos[start:start + tok_n[r]]
                    start += tok_n[r]
                    if len(p) and p[-1] - p[0] != len(p) - 1:
                        raise RuntimeError(f"{self.entry.key}: audio tokens of one window are not contiguous")
                    keep, times = frame_times(len(p), rate_hz=tl.rate_hz, frame_length_s=tl.frame_length,
                                              offset_s=off, end_s=off + len(seg) / SR)
                    sel.append(p[keep])
                    tm.append(times)
                idx = np.concatenate(sel)
                times = np.concatenate(tm)
                for name, h in llm_src:
                    results[ci][name] = (_np(h[ci, idx]), times)
        return results


class AudioFlamingo3Adapter(PlaceholderLLMAdapter):
    """AF3 (HF format): same layout as Qwen2-Audio; mask key ``input_features_mask``."""

    mask_key = "input_features_mask"

    def window_s(self, chunk_s: float | None) -> float | None:
        # The AF3 processor splits each clip into chunk-length windows itself (one <sound> per clip);
        # our window bookkeeping must use exactly its split.
        w = self.settings["window_s"] or self.entry.window_s
        if chunk_s is not None and w is not None and w < chunk_s:
            raise ValueError(f"{self.entry.key}: AF3 windows are the processor's {chunk_s} s chunks; "
                             f"window_s {w} is not supported")
        return chunk_s

    def _prompt(self, n_windows: int) -> str:
        return self.entry.prompt.replace("{audio}", self.entry.audio_placeholder.replace("{n}", "1"))

    def _audio_list(self, clips: Sequence[Clip], per_clip: list[list[tuple[float, np.ndarray]]]
                    ) -> list[np.ndarray]:
        return [c.audio for c in clips]


class GraniteSpeechAdapter(PlaceholderLLMAdapter):
    """Granite-Speech: conformer encoder at 50 Hz on the whole clip (no window), Q-former tokens at 10 Hz.

    The encoder has no padding mask, so padded batches change states: one clip per forward. The block
    output of layer L/2 is stored before Granite's mid-stack CTC self-conditioning residual is added.
    """

    exact_batching = False
    mask_key = "input_features_mask"

    def _chunk_s(self) -> float | None:
        return None

    def _process(self, texts: list[str], audios: list[np.ndarray]) -> Any:
        import torch

        return self.processor(text=texts, audio=[torch.from_numpy(np.asarray(a, np.float32)) for a in audios],
                              return_tensors="pt", padding=True)

    def _enc_and_tok_counts(self, inputs: Mapping[str, Any], n_rows: int) -> tuple[list[int], list[int]]:
        tok = [int(v) for v in inputs[self.mask_key].sum(-1)]
        return [-1] * n_rows, tok  # encoder counts come from the clip lengths in run()

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        import torch

        if self.window_s(None) is not None:
            raise ValueError(f"{self.entry.key}: Granite-Speech reads whole clips; set window_s: null")
        per_clip = [[(0.0, c.audio)] for c in clips]
        inputs = self._process([self._prompt(1) for _ in clips], [c.audio for c in clips])
        _, tok_n = self._enc_and_tok_counts(inputs, len(clips))
        hop = int(self.processor.audio_processor.melspec_kwargs["hop_length"])
        # Encoder frames = stacked mel pairs: (n // hop + 1) mel frames, an odd last frame dropped.
        enc_n = [((len(c.audio) // hop + 1) // 2) for c in clips]
        raw_llm = self.settings["llm_last_layer"] == "raw"
        input_ids = inputs["input_ids"]
        fwd = {k: v for k, v in inputs.items() if k != "audio_embed_sizes"}
        with torch.inference_mode(), LayerTaps(self.layers["encoder"], pre_first=self.emb) as et, \
                LayerTaps(self.layers["llm"] if raw_llm else []) as lt:
            out = self._forward(self._to_device(fwd))
        return self._collect(clips, per_clip, input_ids, enc_n, tok_n, et, lt, out, raw_llm)


class UltravoxAdapter(PlaceholderLLMAdapter):
    """Ultravox-style remote code: the processor returns ``audio_token_start_idx``/``audio_token_len``.

    One forward per 30 s window (the processor takes one clip per call); windows are concatenated by time.
    """

    exact_batching = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Adapter.__init__(self, *args, **kwargs)

    def _chunk_s(self) -> float | None:
        return 30.0

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        import torch

        te, tl = self.entry.targets["encoder"], self.entry.targets["llm"]
        raw_llm = self.settings["llm_last_layer"] == "raw"
        results: list[LayerOut] = []
        for c in clips:
            acc: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
            for off, seg in split_windows(c.audio, self.window_s(self._chunk_s())):
                inputs = self.processor(text=self._prompt(1), audio=seg, sampling_rate=SR, return_tensors="pt")
                with torch.inference_mode(), LayerTaps(self.layers["encoder"], pre_first=self.emb) as et, \
                        LayerTaps(self.layers["llm"] if raw_llm else []) as lt:
                    out = self.model(**self._to_device(inputs), output_hidden_states=True, use_cache=False)
                end = off + len(seg) / SR
                if "encoder" in self.groups:
                    n_enc = int((inputs["audio_lens"][0] - 1) // 2 + 1)
                    keep, times = frame_times(n_enc, rate_hz=te.rate_hz, frame_length_s=te.frame_length,
                                              offset_s=off, end_s=end)
                    for name, o in et.named("encoder"):
                        a = acc.setdefault(name, ([], []))
                        a[0].append(_np(o[0, keep]))
                        a[1].append(times)
                if "llm" in self.groups:
                    s0 = int(inputs["audio_token_start_idx"][0])
                    n = int(inputs["audio_token_len"][0])
                    keep, times = frame_times(n, rate_hz=tl.rate_hz, frame_length_s=tl.frame_length,
                                              offset_s=off, end_s=end)
                    for name, h in self.llm_sources(out.hidden_states, last=lt.single()[-1] if raw_llm else None):
                        a = acc.setdefault(name, ([], []))
                        a[0].append(_np(h[0, s0 + keep]))
                        a[1].append(times)
            results.append({k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in acc.items()})
        return results


ADAPTERS: dict[str, type[Adapter]] = {
    "whisper_encoder": WhisperEncoderAdapter,
    "wav2vec2_like": Wav2Vec2LikeAdapter,
    "qwen2_audio": PlaceholderLLMAdapter,
    "audioflamingo3": AudioFlamingo3Adapter,
    "granite_speech": GraniteSpeechAdapter,
    "ultravox": UltravoxAdapter,
}


def adapter_class(family: str) -> type[Adapter]:
    """The adapter of ``family``: built-in (:data:`ADAPTERS`) or ``ADAPTER`` of its family module."""
    if family in ADAPTERS:
        return ADAPTERS[family]
    from hearlike.models.families import family_module

    mod = family_module(family)
    if mod is None:
        raise ValueError(f"no extraction adapter for family {family!r}")
    return mod.ADAPTER


def audio_token_positions(input_ids_row: Any, audio_token_id: int) -> np.ndarray:
    """Positions (in order) of the audio placeholder tokens in one row of ``input_ids``."""
    ids = np.asarray(input_ids_row.cpu() if hasattr(input_ids_row, "cpu") else input_ids_row)
    return np.flatnonzero(ids == audio_token_id)


# -------------------------------------------------------------------------------------- driver
class _TqdmToLog:
    """File-like sink that forwards tqdm's progress lines to the logger (so they land in the rule log)."""

    def write(self, s: str) -> None:
        s = s.strip("\r\n ")
        if s:
            log.info(s)

    def flush(self) -> None:
        pass


def _load_clips(audio_npz: Path) -> list[Clip]:
    with np.load(audio_npz, allow_pickle=False) as z:
        clips = []
        for k in sorted(z.files):
            if not (k.startswith("s") and k[1:].isdigit()):
                continue
            a = np.asarray(z[k])
            if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
                raise ValueError(f"{audio_npz}: {k} must be a non-empty finite 1-D 16 kHz clip, got shape {a.shape}")
            clips.append(Clip(int(k[1:]), a.astype(np.float32)))
    if not clips:
        raise ValueError(f"{audio_npz}: no s#### clips")
    return clips


def cache_key(*, entry: ModelEntry, model_dir: Path, audio_npz: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The activation cache key (a change in any field means recompute)."""
    import torch
    import transformers

    import hearlike
    from hearlike.io import sha256_file
    from hearlike.models.tiny import read_model_marker

    marker = read_model_marker(model_dir) or {}
    return {
        "format": 1, "model": entry.key, "hub_id": entry.hub_id,
        "revision": entry.revision if entry.pinned else marker.get("revision"),
        "model_files_revision": marker.get("revision"), "dtype": settings["dtype"] or entry.dtype,
        "family": entry.family, "settings": dict(settings), "entry_sha256": entry.entry_sha256(),
        "hearlike_version": hearlike.__version__, "transformers_version": transformers.__version__,
        "torch_version": torch.__version__, "audio_sha256": sha256_file(audio_npz),
    }


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _peak_memory_mb(device: str) -> tuple[float, str]:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "ru_maxrss"


def run_batches(run: Any, items: Sequence[Any], *, batch_size: int, sink: Any, progress: Any = None) -> int:
    """Call ``run(batch)`` over ``items``; on CUDA OOM halve the batch size and retry. Returns the final size."""
    import torch

    i, bs = 0, max(1, int(batch_size))
    while i < len(items):
        batch = items[i:i + bs]
        try:
            out = run(batch)
        except torch.OutOfMemoryError:
            if bs == 1:
                raise
            bs = max(1, bs // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("out of memory: retrying with batch size %d", bs)
            continue
        sink(i, batch, out)
        i += len(batch)
        if progress is not None:
            progress.update(len(batch))
    return bs


def extract_activations(*, key: str, registry: Path, model_dir: Path, audio_npz: Path, out_dir: Path,
                        device: str = "auto", batch_size: int | None = None,
                        settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Extract all registry layers of ``key`` for every clip of ``audio_npz`` into ``out_dir``; return the manifest.

    Reuses ``out_dir`` when its manifest has the same cache key and every file passes its checksum.
    """
    from safetensors import safe_open
    from safetensors.numpy import save_file
    from tqdm import tqdm

    from hearlike.models.loaders import check_model_dir, load_model, torch_dtype

    entry = get_entry(registry, key)
    settings = merge_settings(settings)
    model_dir, audio_npz, out_dir = Path(model_dir), Path(audio_npz), Path(out_dir)
    check_model_dir(entry, model_dir)
    ckey = cache_key(entry=entry, model_dir=model_dir, audio_npz=audio_npz, settings=settings)
    ksha = key_sha256(ckey)
    if (out_dir / "manifest.json").exists():
        old = load_manifest(out_dir)
        if old.get("key_sha256") == ksha:
            try:
                verify_cache(out_dir)
                log.info("%s: cache hit in %s (key %s)", key, out_dir, ksha[:12])
                return old
            except CacheCorruptedError as err:
                log.warning("%s; recomputing", err)
        else:
            log.info("%s: cache key changed (%s → %s); recomputing", key, str(old.get("key_sha256"))[:12], ksha[:12])
        (out_dir / "manifest.json").unlink()

    dev = _resolve_device(device)
    dtype_name = settings["dtype"] or entry.dtype
    t0 = time.time()
    model, processor = load_model(entry, model_dir, device=dev, dtype=dtype_name)
    adapter = adapter_class(entry.family)(entry, model, processor, device=dev, dtype=torch_dtype(dtype_name),
                                     settings=settings)
    clips = _load_clips(audio_npz)
    # Longest first: an OOM shows up in the first batch, and similar lengths pad little.
    order = sorted(clips, key=lambda c: (-len(c.audio), c.sid))
    bs = int(batch_size or entry.resources["batch_size"])
    if not adapter.exact_batching and bs > 1:
        log.info("%s: padded batches would change this model's states; using batch size 1", key)
        bs = 1
    table = [row for row in layer_table(entry) if row["group"] in adapter.groups]
    extra = []
    if settings["store_embedding_layer"]:
        for g in adapter.groups:
            t = entry.targets[g]
            extra.append({"name": f"{g}.emb", "group": g, "index": None, "layer_index": None,
                          "relative_depth": None, "rate_hz": float(t.rate_hz), "frame_length_s": t.frame_length,
                          "note": "input of block 1 (embedding output); not an analysed layer"})
    names = [r["name"] for r in table + extra]
    store = np.dtype(settings["store_dtype"])

    partial = out_dir / ".partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    frames: dict[str, dict[str, int]] = {g: {} for g in adapter.groups}

    def sink(i: int, batch: Sequence[Clip], outs: list[LayerOut]) -> None:
        tensors: dict[str, np.ndarray] = {}
        for c, res in zip(batch, outs, strict=True):
            for name in names:
                states, times = res[name]
                if store == np.float16 and np.abs(states).max(initial=0.0) > FP16_MAX:
                    raise ValueError(f"{key}: {name} sentence {c.sid}: values exceed float16; "
                                     "use settings store_dtype: float32")
                tensors[f"{name}/s{c.sid:04d}"] = np.ascontiguousarray(states.astype(store))
                tensors[f"{name}/s{c.sid:04d}.times"] = np.ascontiguousarray(times.astype(np.float64))
                frames[name.split(".")[0]][str(c.sid)] = int(states.shape[0])
        save_file(tensors, str(partial / f"b{i:06d}.safetensors"))

    log.info("%s: extracting %d layers for %d sentences on %s (batch size %d)", key, len(names), len(clips), dev, bs)
    if dev.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
    with tqdm(total=len(order), desc=f"extract {key}", file=_TqdmToLog(), mininterval=10.0, ascii=True,
              disable=False) as bar:
        final_bs = run_batches(adapter.run, order, batch_size=bs, sink=sink, progress=bar)
    peak, peak_kind = _peak_memory_mb(dev)
    log.info("%s: peak memory %.0f MB (%s)", key, peak, peak_kind)

    parts = sorted(partial.glob("b*.safetensors"))
    layers_meta: list[dict[str, Any]] = []
    extra_meta: list[dict[str, Any]] = []
    for row in table + extra:
        items: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for p in parts:
            with safe_open(str(p), framework="np") as f:
                for k in f.keys():
                    if k.startswith(row["name"] + "/") and not k.endswith(".times"):
                        items[int(k.split("/s")[1])] = (f.get_tensor(k), f.get_tensor(k + ".times"))
        fname = f"{row['name']}.safetensors"
        sha = write_layer(out_dir / fname, items, store_dtype=settings["store_dtype"],
                          metadata={"model": key, "layer": row["name"]})
        dim = int(next(iter(items.values()))[0].shape[1])
        (extra_meta if row in extra else layers_meta).append(
            {**row, "dim": dim, "file": fname, "sha256": sha,
             "n_frames": int(sum(v[0].shape[0] for v in items.values()))})
    shutil.rmtree(partial)
    produced = {m["file"] for m in layers_meta + extra_meta}
    for stale in out_dir.glob("*.safetensors"):
        if stale.name not in produced:  # layer files of an earlier run with other settings
            stale.unlink()
    manifest = {
        "key": ckey, "key_sha256": ksha, "model": key, "layers": layers_meta, "extra_layers": extra_meta,
        "sentence_ids": sorted(c.sid for c in clips), "frames": frames,
        "llm_last_layer": settings["llm_last_layer"] if "llm" in adapter.groups else None,
        "stored": ("encoder: raw block outputs via forward hooks during the model's forward; "
                   "llm: hidden_states[1:] at the audio-token positions"
                   + ("; last llm layer is post-final-norm" if settings["llm_last_layer"] == "post_norm" else
                      "; last llm layer is the raw block output (pre final norm)")),
        "run": {"device": dev, "batch_size": bs, "final_batch_size": final_bs, "peak_mem_mb": round(peak, 1),
                "peak_mem_kind": peak_kind, "wall_s": round(time.time() - t0, 2)},
    }
    write_manifest(out_dir, manifest)
    return manifest


def expected_frames(duration_s: float, rate_hz: float) -> int:
    """Frames of a stack at ``rate_hz`` that start inside a clip of ``duration_s`` (ceil)."""
    return math.ceil(duration_s * rate_hz - 1e-9)
