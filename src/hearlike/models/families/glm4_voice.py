"""GLM-4-Voice-9B: speech tokenizer encoder (``WhisperVQEncoder``) + ChatGLM LM over discrete audio tokens.

Data flow (as in the model's own demo, ``web_demo.py`` + ``speech_tokenizer/utils.py::extract_speech_token``):

1. The clip is cut into consecutive 30 s segments (hard-coded in ``extract_speech_token``; a smaller
   ``window_s`` is honoured, a larger one is capped at 30 s). All segments of one clip go through the
   ``WhisperFeatureExtractor`` of ``THUDM/glm-4-voice-tokenizer`` in **one** call with
   ``padding="longest"``, ``pad_to_multiple_of = conv1.stride * conv2.stride * pooling_kernel_size * hop``
   (= 1 * 2 * 4 * 160 = 1280 samples) and ``return_attention_mask=True`` (mel mask = sample mask ``[::160]``).
2. ``WhisperVQEncoder(input_features, attention_mask)`` — causal convolutions (100 Hz mel → 50 Hz),
   block-causal attention, ``layers`` = the first ``quantize_position`` (16) Whisper-large-v3 blocks
   (``quantize_encoder_only``), then ×4 average pooling and vector quantization right after block 16
   (``pooling_position = quantize_position = 16``). So **every hooked block output is at 50 Hz**; the
   12.5 Hz pooled/quantized state is not a block output. Token ids are kept where
   ``attention_mask[:, ::2][:, ::4]`` is 1 and concatenated over the segments.
3. Prompt: registry ``prompt`` with ``{audio}`` = ``audio_placeholder`` whose ``{tokens}`` is
   ``"".join(f"<|audio_{k}|>")`` — one ``<|begin_of_audio|> … <|end_of_audio|>`` block per clip, as the demo
   builds it. The GLM tokenizer prepends ``[gMASK]<sop>``. The LM (remote code ``ChatGLMForConditionalGeneration``)
   runs once with ``output_hidden_states=True``.

Layers: ``encoder.NN`` = forward-hook output of ``speech_tokenizer.layers[NN]`` (50 Hz, frame k of a segment
at ``offset + k / 50``; valid frames = ``mask[::2].sum()`` = ``ceil(n / 320)`` for ``n`` samples);
``llm.NN`` = ``hidden_states[NN + 1]`` at the ``<|audio_k|>`` positions (12.5 Hz, token k of a segment at
``offset + k / 12.5``; ``ceil(n / 1280)`` tokens per segment). ChatGLM's ``hidden_states[-1]`` is the raw
output of the last block *before* ``encoder.final_layernorm`` (the norm is applied after the tuple is
built), so the default ``llm_last_layer: post_norm`` takes the last layer from a forward hook on
``final_layernorm``, and ``raw`` from a hook on the last block. Hidden states are accepted batch-first
``[b, s, h]`` (GLM-4 code) or sequence-first ``[s, b, h]`` (ChatGLM2/3 code); the layout is read from the
shapes. Each clip is tokenized and run on its own (as the demo does), so batch composition cannot change
any state. The speech tokenizer runs in float32 (``WhisperVQEncoder.from_pretrained`` without a dtype,
as in ``web_demo.py``) so its token ids match the model's own; the LM runs in the registry dtype.

The tokenizer's ``speech_tokenizer/utils.py`` imports ``torchaudio`` at module level (torchaudio has no
build for torch 2.13), so it is **not** imported: its preprocessing (chunking, feature-extractor call,
stride, masks) is reproduced here; ``speech_tokenizer.modeling_whisper`` (no torchaudio) is imported from
the pinned checkout.

Written against (read offline):

* GitHub THUDM/GLM-4-Voice @ eb00ce9142e8d98b0ed7c57cd47e0d6d5dce9a1a: ``speech_tokenizer/utils.py``
  (``load_quantize_encoder``, ``extract_speech_token``), ``speech_tokenizer/modeling_whisper.py``
  (``CausalConv1d``, ``WhisperVQEncoderLayer``, ``WhisperVQEncoder.__init__``/``forward``: layer count,
  pooling, VQ, ``get_block_causal_attention_mask``), ``speech_tokenizer/configuration_whisper.py``,
  ``web_demo.py`` (``WhisperVQEncoder.from_pretrained(tokenizer_path)``, ``WhisperFeatureExtractor``,
  prompt ``<|system|>…<|user|>\\n<|begin_of_audio|>…<|end_of_audio|><|assistant|>streaming_transcription\\n``,
  ``convert_tokens_to_ids('<|audio_0|>')`` as the audio-id offset), ``model_server.py``
  (``AutoModel.from_pretrained(..., trust_remote_code=True)`` + ``AutoTokenizer``), ``requirements.txt``
  (transformers 4.44.1, torch/torchaudio 2.3.0).
* ``modeling_chatglm.py`` of the HF LM: **not** the glm-4-voice-9b file itself (not available offline) but
  a copy in GitHub WenzheLiu-Speech/GLM-4-Voice-SFT ``model/modeling_chatglm.py`` @ 92bd942d98c7
  (a GLM-4-Voice fine-tuning repo): module tree ``transformer.encoder.layers`` / ``final_layernorm``,
  batch-first states, ``all_hidden_states`` = embedding output + block outputs with the last one pre-norm.
  The GLM-4 tokenizer (``[gMASK]<sop>`` prefix, left padding) was read from a glm-4-9b
  ``tokenization_chatglm.py`` copy. Tokenizer config values (16 kept layers, pooling 4 at 16, block 200,
  causal conv, 128 mel bins) come from a third-party mirror of ``glm-4-voice-tokenizer/config.json``.
  **Unverified**: that the glm-4-voice-9b repo ships exactly this modeling file, and how its tokenizer
  registers ``<|audio_k|>`` (the adapter checks that ``<|audio_0|> … <|audio_{V-1}|>`` map to consecutive ids
  and that the ids at the audio positions equal offset + token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.models import loaders
from hearlike.models.extract import (
    SR,
    Adapter,
    Clip,
    LayerOut,
    LayerTaps,
    frame_times,
    resolve_module,
    split_windows,
)
from hearlike.models.registry import ModelEntry

CHUNK_S = 30.0  # extract_speech_token cuts 30 s segments (hard-coded there, not read from the feature extractor)
TOKENIZER_HUB_ID = "THUDM/glm-4-voice-tokenizer"
SPEECH_ATTR, LM_ATTR = "speech_tokenizer", "glm"  # children of the loaded container (registry module paths)


@dataclass
class GLM4VoiceProcessor:
    """The speech tokenizer's feature extractor and the LM's text tokenizer."""

    feature_extractor: Any
    tokenizer: Any


@dataclass
class SpeechTokens:
    """One clip's tokenizer pass: token ids per segment and valid 50 Hz frames / 12.5 Hz tokens per segment."""

    tokens: list[list[int]]
    n_frames: list[int]
    n_tokens: list[int]
    frames_per_row: int


def companion_dir(entry: ModelEntry, model_dir: Path) -> Path:
    """``<model_dir>/companions/THUDM__glm-4-voice-tokenizer`` (where ``hearlike.models.download`` puts it)."""
    hub = next((c["hub_id"] for c in entry.companions if c["hub_id"].endswith("glm-4-voice-tokenizer")),
               TOKENIZER_HUB_ID)
    return loaders.companion_dir(Path(model_dir), hub)


def load(entry: ModelEntry, model_dir: Path, *, device: str, dtype: Any) -> tuple[Any, GLM4VoiceProcessor]:
    """Speech tokenizer (GitHub package + companion weights, float32) and remote-code LM, in one container.

    Called after :func:`hearlike.models.loaders.check_package_code` (checkout pinned, on sys.path). The LM is
    remote code from the hub repo, so the remote-code rule is applied here as well.
    """
    import torch
    import transformers as tf

    from hearlike.models.loaders import (
        CODE_DIR,
        ModelNotAvailableError,
        _set_modules_cache,
        check_remote_code_allowed,
        dtype_kwarg,
        import_from_checkout,
    )

    model_dir = Path(model_dir)
    check_remote_code_allowed(entry, model_dir)
    _set_modules_cache()
    tok_dir = companion_dir(entry, model_dir)
    if not (tok_dir / "config.json").exists():
        raise ModelNotAvailableError(
            f"{entry.key}: speech tokenizer {TOKENIZER_HUB_ID} not found at {tok_dir}; download the model with "
            f"python -m hearlike.models.download {entry.key} --dest {model_dir} (companions included)")
    code_dir = model_dir / CODE_DIR  # on sys.path first (check_package_code)
    whisper = import_from_checkout(code_dir, "speech_tokenizer.modeling_whisper")
    dtype_kw = dtype_kwarg()
    speech = whisper.WhisperVQEncoder.from_pretrained(tok_dir, local_files_only=True, **{dtype_kw: torch.float32})
    fe = tf.WhisperFeatureExtractor.from_pretrained(tok_dir, local_files_only=True)
    glm = tf.AutoModel.from_pretrained(model_dir, trust_remote_code=True, local_files_only=True, **{dtype_kw: dtype})
    tok = tf.AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True, local_files_only=True)
    model = torch.nn.ModuleDict({SPEECH_ATTR: speech, LM_ATTR: glm}).to(device).eval()
    return model, GLM4VoiceProcessor(feature_extractor=fe, tokenizer=tok)


def _tokens_first(h: Any, n_seq: int) -> Any:
    """``[s, h]`` of batch row 0 from a ``[1, s, h]`` (batch-first) or ``[s, 1, h]`` (sequence-first) state."""
    if h.dim() != 3:
        raise ValueError(f"LM hidden state has shape {tuple(h.shape)}, expected 3 dims")
    if h.shape[0] == 1 and h.shape[1] == n_seq:
        return h[0]
    if h.shape[1] == 1 and h.shape[0] == n_seq:
        return h[:, 0]
    raise ValueError(f"LM hidden state shape {tuple(h.shape)} matches neither [1, {n_seq}, D] nor [{n_seq}, 1, D]")


def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class GLM4VoiceAdapter(Adapter):
    """Speech-tokenizer encoder blocks (50 Hz, hooks) and ChatGLM states at the ``<|audio_k|>`` tokens (12.5 Hz)."""

    exact_batching = True  # every clip runs alone (its own tokenizer call and prompt), whatever the batch

    def __init__(self, entry: ModelEntry, model: Any, processor: Any, *, device: str, dtype: Any,
                 settings: Mapping[str, Any]) -> None:
        super().__init__(entry, model, processor, device=device, dtype=dtype, settings=settings)
        if not entry.prompt or "{audio}" not in entry.prompt:
            raise ValueError(f"{entry.key}: prompt must contain '{{audio}}'")
        if not entry.audio_placeholder or entry.audio_placeholder.count("{tokens}") != 1:
            raise ValueError(f"{entry.key}: audio_placeholder must contain '{{tokens}}' exactly once (where the "
                             "<|audio_k|> tokens go), e.g. '<|begin_of_audio|>{tokens}<|end_of_audio|>'")
        self.speech = getattr(model, SPEECH_ATTR)
        self.glm = getattr(model, LM_ATTR)
        cfg = self.speech.config
        self.conv = int(self.speech.conv1.stride[0] * self.speech.conv2.stride[0])
        self.pool = int(cfg.pooling_kernel_size or 1)
        hop = int(processor.feature_extractor.hop_length)
        self.multiple = self.conv * self.pool * hop  # pad_to_multiple_of of extract_speech_token
        # True rates from the code's strides; the registry must agree (frame times are built from it).
        true = {"encoder": SR / (hop * self.conv), "llm": SR / self.multiple}
        for g, rate in true.items():
            if g in entry.targets and abs(entry.targets[g].rate_hz - rate) > 1e-9:
                raise ValueError(f"{entry.key}: registry targets.{g}.rate_hz is {entry.targets[g].rate_hz}, the "
                                 f"tokenizer's strides give {rate} Hz")
        tok = processor.tokenizer
        n_codes = int(cfg.quantize_vocab_size)
        first, last = tok.convert_tokens_to_ids("<|audio_0|>"), tok.convert_tokens_to_ids(f"<|audio_{n_codes - 1}|>")
        if first is None or first == tok.unk_token_id or last != first + n_codes - 1:
            raise ValueError(f"{entry.key}: the LM tokenizer must map <|audio_0|> … <|audio_{n_codes - 1}|> to "
                             f"{n_codes} consecutive ids (got {first} … {last})")
        self.audio_offset, self.n_codes = int(first), n_codes
        llm_path = entry.targets["llm"].modules
        parent = resolve_module(model, llm_path.rsplit(".", 1)[0])
        self.final_norm = getattr(parent, "final_layernorm", None)

    def speech_tokens(self, segments: Sequence[np.ndarray]) -> SpeechTokens:
        """Tokenize one clip's segments exactly as ``extract_speech_token`` does (one padded batch)."""
        fe = self.processor.feature_extractor
        fe_device = "cuda" if str(self.device).startswith("cuda") else "cpu"
        feats = fe(list(segments), sampling_rate=SR, return_attention_mask=True, return_tensors="pt",
                   device=fe_device, padding="longest", pad_to_multiple_of=self.multiple)
        mask = feats["attention_mask"].to(self.device)
        out = self.speech(input_features=feats["input_features"].to(self.device, self.speech.dtype),
                          attention_mask=mask)
        ids = out.quantized_token_ids
        m50 = mask[:, ::self.conv]
        m_tok = m50[:, ::self.pool]
        if tuple(m_tok.shape) != tuple(ids.shape):
            raise RuntimeError(f"{self.entry.key}: token mask {tuple(m_tok.shape)} != token ids {tuple(ids.shape)}")
        return SpeechTokens(tokens=[ids[i][m_tok[i].bool()].tolist() for i in range(ids.shape[0])],
                            n_frames=[int(v) for v in m50.sum(-1)], n_tokens=[int(v) for v in m_tok.sum(-1)],
                            frames_per_row=int(m50.shape[1]))

    def prompt(self, tokens: Sequence[int]) -> str:
        """The LM text input for a clip's concatenated speech tokens."""
        audio = self.entry.audio_placeholder.replace("{tokens}", "".join(f"<|audio_{t}|>" for t in tokens))
        return self.entry.prompt.replace("{audio}", audio)

    def audio_positions(self, input_ids: Any, tokens: Sequence[int]) -> np.ndarray:
        """Positions of the ``<|audio_k|>`` tokens; checked against the speech tokens they must encode."""
        ids = np.asarray(input_ids.cpu() if hasattr(input_ids, "cpu") else input_ids)
        pos = np.flatnonzero((ids >= self.audio_offset) & (ids < self.audio_offset + self.n_codes))
        want = np.asarray(tokens, dtype=np.int64) + self.audio_offset
        if len(pos) != len(want) or not np.array_equal(ids[pos], want):
            raise RuntimeError(f"{self.entry.key}: the prompt holds {len(pos)} audio tokens, expected {len(want)} "
                               "equal to the speech tokens (prompt or tokenizer splits <|audio_k|>?)")
        if len(pos) and pos[-1] - pos[0] != len(pos) - 1:
            raise RuntimeError(f"{self.entry.key}: the audio tokens are not contiguous in the prompt")
        return pos

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        return [self._run_clip(c) for c in clips]

    def _run_clip(self, clip: Clip) -> LayerOut:
        import torch

        te, tl = self.entry.targets["encoder"], self.entry.targets["llm"]
        wins = split_windows(clip.audio, self.window_s(CHUNK_S))
        enc = "encoder" in self.groups
        res: LayerOut = {}
        with torch.inference_mode(), LayerTaps(self.layers["encoder"] if enc else [], pre_first=self.emb) as et:
            st = self.speech_tokens([seg for _, seg in wins])
        spans = [frame_times(n, rate_hz=te.rate_hz, frame_length_s=te.frame_length, offset_s=off,
                             end_s=off + len(seg) / SR) for n, (off, seg) in zip(st.n_frames, wins, strict=True)]
        if enc:
            for name, o in et.named("encoder"):
                if o.shape[1] != st.frames_per_row:  # a block after the pooling position runs at 12.5 Hz
                    raise ValueError(
                        f"{self.entry.key}: {name} has {o.shape[1]} frames per segment, the 50 Hz blocks "
                        f"{st.frames_per_row}: blocks after pooling_position run at a lower rate, which one "
                        "registry rate per group cannot describe")
                arr = _np(o)
                res[name] = (np.concatenate([arr[r, keep] for r, (keep, _) in enumerate(spans)]),
                             np.concatenate([t for _, t in spans]))
        if "llm" in self.groups:
            res.update(self._llm(st, wins, tl))
        return res

    def _llm(self, st: SpeechTokens, wins: list[tuple[float, np.ndarray]], tl: Any) -> LayerOut:
        import torch

        tokens = [t for row in st.tokens for t in row]
        enc = self.processor.tokenizer([self.prompt(tokens)], return_tensors="pt")
        pos = self.audio_positions(enc["input_ids"][0], tokens)
        sel, times, start = [], [], 0
        for n, (off, seg) in zip(st.n_tokens, wins, strict=True):
            keep, tm = frame_times(n, rate_hz=tl.rate_hz, frame_length_s=tl.frame_length, offset_s=off,
                                   end_s=off + len(seg) / SR)
            sel.append(pos[start:start + n][keep])
            times.append(tm)
            start += n
        idx = np.concatenate(sel)
        tm = np.concatenate(times)
        raw = self.settings["llm_last_layer"] == "raw"
        last = [self.layers["llm"][-1]] if raw else ([self.final_norm] if self.final_norm is not None else [])
        fwd = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask", "position_ids") if k in enc}
        with torch.inference_mode(), LayerTaps(last) as lt:
            out = self.glm(**fwd, output_hidden_states=True, use_cache=False, return_dict=True)
        hs = out.hidden_states
        n_seq = int(enc["input_ids"].shape[1])
        # post-norm: final_layernorm output; raw: last block output (hidden_states[-1] is pre-norm)
        named = self.llm_sources(hs, last=lt.single()[0] if last else None)
        return {name: (_np(_tokens_first(h, n_seq)[torch.as_tensor(idx)]), tm) for name, h in named}


ADAPTER = GLM4VoiceAdapter
