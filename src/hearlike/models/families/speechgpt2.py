"""SpeechGPT-2.0-preview (``fnlp/SpeechGPT-2.0-preview-7B`` + ``-Codec``): codec tokens into a grouped MIMO LM.

Data flow (as in the official demo): 16 kHz clip → resampled to the codec's 24 kHz → ``Generator.
inference_tokenize`` → RVQ codes ``[n_vq=3, 1, N]`` at 25 Hz → flattened frame-major, 8 silence frames
``(688, 131, 226)`` appended, padded with silence to a whole number of groups → one speech ``InputSegment``
(``<|sosp|>``, one ``<|empty|>`` text token per group, ``<|eosp|>``; zero-embedding id 1024 in the speech
channels of every text position) → ``MIMOLlamaForCausalLM``: LM position = one text token + ``group_size=3``
codec frames (so **25 / 3 Hz, 120 ms per position**), Qwen2 blocks in ``model.layers``. There is no audio
encoder to hook; ``llm.NN`` = ``hidden_states[NN + 1]`` at the speech positions that hold at least one real
codec frame and start inside the clip (the appended silence is dropped).

Counts for ``n`` samples at 16 kHz: ``n24 = ceil(3 n / 2)`` (torchaudio sinc resample length);
mel frames ``M = n24 // 240`` (causal STFT, cut to ``n // hop``); codec frames ``N = ceil(M / 4)`` (two causal
stride-2 convs, each ``ceil(L / 2)``); frames fed ``F = N + 8 + p`` with ``p = (9 - 3 (N + 8) % 9) // 3``
(the demo's padding: 1–3 silence frames, also 3 when already divisible); speech positions ``F / 3``; stored
positions ``min(ceil(N / 3), ceil(duration · 25 / 3))``; position k covers ``[0.12 k, 0.12 k + 0.12)`` s.

Registry prompt: the text of the demo's first turn, split into the demo's separately tokenized segments.
Markers: ``{audio}`` (the sentence's speech segment, its form given by ``audio_placeholder``:
``<|sosp|>{codec_tokens}<|eosp|>`` = with sosp/eosp as in the demo, ``{codec_tokens}`` = without),
``{greeting}`` (line 0 of the checkout's ``extra/greetings.jsonl``: pre-tokenized text + codes, the demo's
default greeting, which the demo requires before the first turn), ``{eos}`` (``tokenizer.eos_token``, substituted)
and ``{seg}`` (a boundary between text segments). Text between markers is one segment, tokenized on its own
with ``add_special_tokens=False`` as ``InputSegment.to_input_id`` does.

Written against github.com/OpenMOSS/SpeechGPT-2.0-preview @ 730c90f633318111035a8e58dca52e3405f4e9d6:
``demo_gradio.py`` (``InputSegment.__init__/insert_between/to_input_id``; ``Inference.__init__``: tokenizer,
``MIMOLlamaForCausalLM.from_pretrained(path, padding_idx, sosp_idx, eosp_idx, args)``, group_size 3, codec
``Generator.load_from_checkpoint``; ``set_greeting``; ``read_wav``; ``preprocess``: tokenize, silence, prompt;
``forward``: ``input_ids.T.reshape(1, -1)``; ``MIMOInterface.create_interface``: default mode s2s, greeting
line 0), ``mimo_qwen2_grouped.py`` (``MIMOModelArguments`` defaults; ``MIMOLlamaForCausalLM.__init__`` and
``forward``: input reshape, ``text = ids[:, 0, ::group_size]``, grouped speech embedding, ``self.model`` Qwen2,
``hidden_states=outputs.hidden_states``, ``num_logits_to_keep``), ``Codec/models/codec.py`` (``Generator``:
``sampling_rate = mel fs``, ``mel_downsample_factor = hop``, ``total_downsample_factor = 960``,
``inference_tokenize``, ``load_from_checkpoint``), ``Codec/models/modules/mel_transform.py`` (causal STFT),
``Codec/models/moshi_modules/{resample,conv}.py`` (``ConvDownsample1d``, ``get_extra_padding_for_conv1d``),
``Codec/models/modules/{encoder,conv_layers,quantizer,vq_module}.py``, ``Codec/config/sg2_codec_config.yaml``,
``README_EN.md`` (codec checkpoint ``sg2_codec_ckpt.pkl``; base LM Qwen2.5-7B-Instruct).
Not verified (hub files not readable offline): the LM's ``config.json`` (28 layers × 3584 assumed from
Qwen2.5-7B), the tokenizer's special tokens and ``eos_token``, the codec checkpoint's contents.
Deviations from the demo, on purpose: no ``torch.compile``, no ``flash_attention_2`` (default attention,
registry dtype), no 16-bit WAV round trip of the gradio input; resampling uses ``torchaudio.functional.
resample`` when importable, else :func:`sinc_resample` (same default kernel, our own code).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.models.extract import SR, Adapter, Clip, LayerOut, LayerTaps, _np, frame_times
from hearlike.models.loaders import CODE_DIR, companion_dir, import_from_checkout
from hearlike.models.registry import ModelEntry

CODEC_CONFIG = "Codec/config/sg2_codec_config.yaml"   # demo_gradio.parse_args default
CODEC_CKPT = "sg2_codec_ckpt.pkl"                      # README: --codec_ckpt_path .../sg2_codec_ckpt.pkl
GREETINGS = "extra/greetings.jsonl"                    # demo default greeting file, line 0
GREETING_LINE = 0
SILENCE_FRAME = (688, 131, 226)                        # demo preprocess: silence_tokens
SILENCE_FRAMES = 8                                     # demo preprocess: silence_frames
TEXT_FILL = -100                                       # demo insert_between value (never embedded)
PLACEHOLDERS = {"<|sosp|>{codec_tokens}<|eosp|>": True, "{codec_tokens}": False}
_SPLIT = re.compile(r"(\{audio\}|\{greeting\}|\{seg\})")


# ------------------------------------------------------------------------------------ audio side
def sinc_resample(wav: Any, orig: int, new: int, *, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> Any:
    """Band-limited (Hann-windowed sinc) resampling of ``wav [C, n]``; torchaudio's default method and length
    ``ceil(n · new / orig)``, written here so the codec path also runs where torchaudio is missing."""
    import torch
    import torch.nn.functional as F

    g = math.gcd(int(orig), int(new))
    o, n_ = int(orig) // g, int(new) // g
    if o == n_:
        return wav
    base = min(o, n_) * rolloff
    width = math.ceil(lowpass_filter_width * o / base)
    idx = torch.arange(-width, width + o, dtype=wav.dtype, device=wav.device)[None, None] / o
    t = torch.arange(0, -n_, -1, dtype=wav.dtype, device=wav.device)[:, None, None] / n_ + idx
    t = (t * base).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / o)
    length = wav.shape[-1]
    y = F.conv1d(F.pad(wav[:, None], (width, width + o)), kernel, stride=o)
    return y.transpose(1, 2).reshape(wav.shape[0], -1)[:, :math.ceil(n_ * length / o)]


def resample(wav: Any, orig: int, new: int) -> Any:
    """``torchaudio.functional.resample`` (the demo's call) if available, else :func:`sinc_resample`."""
    try:
        import torchaudio.functional as taf
    except Exception:  # torchaudio missing, or its extension fails to load (torch 2.13)
        return sinc_resample(wav, orig, new)
    return taf.resample(wav, orig, new)


def codec_frames(n_samples_16k: int, *, codec_sr: int = 24000, hop: int = 240, total: int = 960) -> int:
    """Codec frames the real encode path yields for ``n_samples_16k`` samples (see module doc)."""
    n24 = math.ceil(n_samples_16k * codec_sr / SR)
    return math.ceil((n24 // hop) / (total // hop))


def pad_frames(n_codec: int, *, group: int = 3, n_vq: int = 3) -> int:
    """Silence frames the demo appends after ``n_codec`` frames (8 plus its padding to a whole group)."""
    flat = n_vq * (n_codec + SILENCE_FRAMES)
    return SILENCE_FRAMES + (group * n_vq - flat % (group * n_vq)) // len(SILENCE_FRAME)


# ---------------------------------------------------------------------------------- prompt side
def text_columns(ids: Sequence[int], *, group: int, n_vq: int, zeroemb: int) -> np.ndarray:
    """A text-only segment: ``[1 + n_vq, len(ids) · group]``; one text token per group, zero speech."""
    cols = np.full((1 + n_vq, len(ids) * group), zeroemb, dtype=np.int64)
    cols[0] = TEXT_FILL
    cols[0, ::group] = np.asarray(ids, dtype=np.int64)
    return cols


def speech_columns(text_ids: Sequence[int], frames: np.ndarray, *, group: int, zeroemb: int, fill_id: int,
                   sosp: int | None, eosp: int | None) -> np.ndarray:
    """A speech segment: frames ``[F, n_vq]`` (F divisible by ``group``) with their text channel.

    Text shorter than F / group is padded with ``fill_id`` (``<|empty|>``), longer text is cut; with
    ``sosp``/``eosp`` one position of zero speech is added on each side, as in the demo.
    """
    n_f, n_vq = frames.shape
    if n_f % group:
        raise ValueError(f"{n_f} speech frames are not divisible by group_size {group}")
    n_pos = n_f // group
    text = [int(t) for t in text_ids][:n_pos]
    text += [int(fill_id)] * (n_pos - len(text))
    lead = 0
    if sosp is not None and eosp is not None:
        text = [int(sosp), *text, int(eosp)]
        lead = group
    cols = np.full((1 + n_vq, len(text) * group), zeroemb, dtype=np.int64)
    cols[0] = TEXT_FILL
    cols[0, ::group] = text
    cols[1:, lead:lead + n_f] = frames.T
    return cols


@dataclass
class SpeechGPT2Processor:
    """What ``load`` returns next to the LM: tokenizer, codec, the demo's greeting, the code directory."""

    tokenizer: Any
    codec: Any
    greeting_text: list[int]
    greeting_audio: list[int]
    code_dir: Path

    def special_id(self, token: str) -> int:
        return special_id(self.tokenizer, token)


def special_id(tokenizer: Any, token: str) -> int:
    """Id of a special token; error if the tokenizer does not know it (ids would silently be unk)."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no special token {token!r}")
    return int(tid)


# ------------------------------------------------------------------------------------- loading
def _codec_dir(entry: ModelEntry, model_dir: Path) -> Path:
    comps = [c for c in entry.companions if c.get("purpose") == "codec"]
    if len(comps) != 1:
        raise ValueError(f"{entry.key}: needs exactly one companion with purpose: codec")
    return companion_dir(model_dir, comps[0]["hub_id"])


def _read_greeting(code_dir: Path) -> tuple[list[int], list[int]]:
    lines = (code_dir / GREETINGS).read_text(encoding="utf-8").splitlines()
    g = json.loads(lines[GREETING_LINE])
    return [int(t) for t in g["text"]], [int(a) for a in g["audio"]]


def load(entry: ModelEntry, model_dir: Path, *, device: str, dtype: Any) -> tuple[Any, SpeechGPT2Processor]:
    """The MIMO LM (registry dtype) and a processor holding tokenizer, codec (float32, as in the demo), greeting."""
    import transformers as tf

    model_dir = Path(model_dir)
    code_dir = model_dir / CODE_DIR
    mimo = import_from_checkout(code_dir, "mimo_qwen2_grouped")
    codec_mod = import_from_checkout(code_dir, "Codec.models.codec")
    tok = tf.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    sosp, eosp = special_id(tok, "<|sosp|>"), special_id(tok, "<|eosp|>")
    args = mimo.MIMOModelArguments()  # the demo parses no model flags: all defaults
    args.model_name_or_path = str(model_dir)
    from hearlike.models.loaders import dtype_kwarg

    dtype_kw = dtype_kwarg()
    model = mimo.MIMOLlamaForCausalLM.from_pretrained(
        model_dir, padding_idx=tok.pad_token_id, sosp_idx=sosp, eosp_idx=eosp,
        args=args, local_files_only=True, **{dtype_kw: dtype})
    model.to(device).eval()
    codec_dir = _codec_dir(entry, model_dir)
    ckpt = codec_dir / CODEC_CKPT
    if not ckpt.exists():
        raise FileNotFoundError(f"{entry.key}: codec checkpoint {ckpt} missing; download the codec companion")
    codec = codec_mod.Generator.load_from_checkpoint(config_path=str(code_dir / CODEC_CONFIG),
                                                     checkpoint_path=str(ckpt))
    codec.to(device).eval()
    text, audio = _read_greeting(code_dir)
    return model, SpeechGPT2Processor(tok, codec, text, audio, code_dir)


# ------------------------------------------------------------------------------------- adapter
class SpeechGPT2Adapter(Adapter):
    """One clip per forward (whole clip, no windows): codec tokens → demo prompt → LM states at speech positions."""

    exact_batching = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.window_s(None) is not None:
            raise ValueError(f"{self.entry.key}: SpeechGPT-2.0 reads whole clips; set window_s: null")
        if self.entry.audio_placeholder not in PLACEHOLDERS:
            raise ValueError(f"{self.entry.key}: audio_placeholder must be one of {sorted(PLACEHOLDERS)}")
        self.group = int(self.model.config.group_size)
        self.n_vq = int(self.model.n_vq)
        self.zeroemb = int(self.model.zeroemb_idx)
        p = self.processor
        self.sosp, self.eosp, self.empty = (p.special_id(t) for t in ("<|sosp|>", "<|eosp|>", "<|empty|>"))
        codec = p.codec
        true_rate = codec.sampling_rate / codec.total_downsample_factor / self.group
        rate = float(self.entry.targets["llm"].rate_hz)
        if abs(rate - true_rate) > 1e-6 * true_rate:
            raise ValueError(f"{self.entry.key}: registry llm rate_hz {rate} but one LM position holds {self.group} "
                             f"codec frames at {codec.sampling_rate / codec.total_downsample_factor} Hz = "
                             f"{true_rate!r} Hz")

    # --------------------------------------------------------------------------- audio → codes
    def codes(self, audio: np.ndarray) -> np.ndarray:
        """Codec frames ``[N, n_vq]`` of a 16 kHz clip (the demo's read_wav + inference_tokenize)."""
        import torch

        codec = self.processor.codec
        if len(audio) * codec.sampling_rate / SR < codec.mel_downsample_factor:
            raise ValueError(f"{self.entry.key}: clip of {len(audio)} samples is shorter than one codec mel hop "
                             f"({codec.mel_downsample_factor / codec.sampling_rate * 1000:.0f} ms)")
        dev = next(codec.parameters()).device
        wav = resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None], SR, codec.sampling_rate)
        with torch.inference_mode():
            tokens = codec.inference_tokenize(wav.reshape(1, 1, -1).to(dev))
        want = codec_frames(len(audio), codec_sr=codec.sampling_rate, hop=codec.mel_downsample_factor,
                            total=codec.total_downsample_factor)
        if tuple(tokens.shape) != (self.n_vq, 1, want):
            raise RuntimeError(f"{self.entry.key}: codec returned codes of shape {tuple(tokens.shape)}, expected "
                               f"({self.n_vq}, 1, {want}) for {len(audio)} samples")
        return tokens[:, 0, :].T.cpu().numpy().astype(np.int64)

    def speech_frames(self, codes: np.ndarray) -> np.ndarray:
        """Codes followed by the demo's silence frames (8 + padding to a whole group)."""
        sil = np.tile(np.asarray(SILENCE_FRAME, dtype=np.int64), (pad_frames(len(codes), group=self.group,
                                                                             n_vq=self.n_vq), 1))
        return np.concatenate([codes, sil])

    # --------------------------------------------------------------------------- prompt → ids
    def build_input(self, codes: np.ndarray) -> tuple[np.ndarray, int, int]:
        """``(columns [1 + n_vq, S], first speech position, number of speech positions)`` for one clip."""
        p = self.processor
        if "{eos}" in self.entry.prompt and not p.tokenizer.eos_token:
            raise ValueError(f"{self.entry.key}: prompt uses {{eos}} but the tokenizer has no eos_token")
        prompt = self.entry.prompt.replace("{eos}", p.tokenizer.eos_token or "")
        with_sosp = PLACEHOLDERS[self.entry.audio_placeholder]
        kw = {"group": self.group, "zeroemb": self.zeroemb, "fill_id": self.empty}
        marks = {"sosp": self.sosp, "eosp": self.eosp}
        parts, start, n_pos, pos = [], -1, 0, 0
        for piece in _SPLIT.split(prompt):
            if piece in ("", "{seg}"):
                continue
            if piece == "{audio}":
                frames = self.speech_frames(codes)
                cols = speech_columns([], frames, **kw, **(marks if with_sosp else {"sosp": None, "eosp": None}))
                start, n_pos = pos + int(with_sosp), len(frames) // self.group
            elif piece == "{greeting}":
                g = np.asarray(p.greeting_audio, dtype=np.int64).reshape(-1, self.n_vq)
                cols = speech_columns(p.greeting_text, g, **kw, **marks)
            else:
                ids = p.tokenizer(piece, add_special_tokens=False, padding=False)["input_ids"]
                cols = text_columns(ids, group=self.group, n_vq=self.n_vq, zeroemb=self.zeroemb)
            parts.append(cols)
            pos += cols.shape[1] // self.group
        return np.concatenate(parts, axis=1), start, n_pos

    def _check_span(self, cols: np.ndarray, start: int, n_pos: int, frames: np.ndarray) -> None:
        """The speech span as the model reads it: text channel every group-th column, speech channels grouped."""
        text = cols[0, ::self.group]
        if not np.all(text[start:start + n_pos] == self.empty):
            raise RuntimeError(f"{self.entry.key}: speech positions do not carry <|empty|> text tokens")
        if PLACEHOLDERS[self.entry.audio_placeholder] and (text[start - 1] != self.sosp
                                                           or text[start + n_pos] != self.eosp):
            raise RuntimeError(f"{self.entry.key}: speech span not enclosed by <|sosp|>/<|eosp|>")
        got = cols[1:, start * self.group:(start + n_pos) * self.group].T
        if not np.array_equal(got, frames):
            raise RuntimeError(f"{self.entry.key}: speech channels do not hold the codec frames at the span")

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        import torch

        tl = self.entry.targets["llm"]
        raw_llm = self.settings["llm_last_layer"] == "raw"
        dev = next(self.model.parameters()).device
        results: list[LayerOut] = []
        for c in clips:
            codes = self.codes(c.audio)
            cols, start, n_pos = self.build_input(codes)
            self._check_span(cols, start, n_pos, self.speech_frames(codes))
            flat = torch.from_numpy(np.ascontiguousarray(cols.T).reshape(1, -1)).to(dev)  # demo: input_ids.T.reshape
            with torch.inference_mode(), LayerTaps(self.layers["llm"] if raw_llm else []) as lt:
                out = self.model(input_ids=flat, output_hidden_states=True, use_cache=False, num_logits_to_keep=1)
            src = self.llm_sources(out.hidden_states, last=lt.single()[-1] if raw_llm else None)
            n_real = math.ceil(len(codes) / self.group)  # positions holding >= 1 real codec frame
            keep, times = frame_times(min(n_real, n_pos), rate_hz=tl.rate_hz, frame_length_s=tl.frame_length,
                                      offset_s=0.0, end_s=c.duration)
            idx = start + keep
            results.append({name: (_np(h[0, idx]), times) for name, h in src})
        return results


ADAPTER = SpeechGPT2Adapter
