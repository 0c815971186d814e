"""LLaMA-Omni (``ICTNLP/Llama-3.1-8B-Omni``): loading with its own ``omni_speech`` package and extraction.

Written against github.com/ictnlp/LLaMA-Omni @ c63fd7221d1e6c2d22c85e781bc61e842835ed53 (read offline):

* ``omni_speech/model/builder.py::load_pretrained_model`` — tokenizer ``AutoTokenizer(use_fast=False)``;
  ``OmniSpeech2SLlamaForCausalLM.from_pretrained(low_cpu_mem_usage=False)``; then the speech encoder is
  **rebuilt** from the openai-whisper checkpoint (``build_speech_encoder(model.config)``), because the
  one built in ``__init__`` is re-initialised by ``post_init``/``from_pretrained``; LM ``.to(device)``,
  encoder ``.to(device, float16)``.
* ``omni_speech/model/speech_encoder/speech_encoder.py`` — ``whisper.load_model(config.speech_encoder).encoder``
  (openai-whisper ``AudioEncoder``: ``conv1``, ``conv2``, ``positional_embedding``, ``blocks``, ``ln_post``),
  LayerNorms swapped for ``nn.LayerNorm``. The encoder asserts a 3000-frame (30 s) mel.
* ``omni_speech/model/speech_projector/speech_projector.py::EncoderProjectorConcat`` — drop ``T % k`` frames,
  stack k = ``speech_encoder_ds_rate`` = 5 frames, Linear(5·1280→2048)-ReLU-Linear(→4096).
* ``omni_speech/model/omni_speech_arch.py`` — ``encode_speech``: lengths ``(L + 1) // 2`` then ``// k``;
  ``prepare_inputs_labels_for_speech_and_text``: each ``SPEECH_TOKEN_INDEX`` (-200) in ``input_ids`` is
  replaced in place by the next speech item's features (items taken in batch-row order), speech labels
  ``IGNORE_INDEX``, rows cut to ``config.tokenizer_model_max_length``, right padding by default.
* ``omni_speech/model/language_model/omni_speech{,2s}_llama.py`` — ``generate`` = that preparation, then the
  Llama forward on ``inputs_embeds``; the 2S eval ``forward`` forces ``output_hidden_states=True``.
* ``omni_speech/infer/infer.py`` (+ ``run.sh``: ``--input_type mel --mel_size 128 --conv-mode llama_3 --s2s``) —
  ``whisper.pad_or_trim`` (30 s) → ``whisper.log_mel_spectrogram(n_mels=128).permute(1, 0)`` →
  ``speech_lengths = [3000]`` (the *padded* length); prompt via ``conversation.py`` and
  ``datasets/preprocess.py::tokenizer_speech_token`` (splits at ``<speech>``).

Data flow and what is stored (per 30 s window, the last one shorter):

* mel: 3000 frames (the window zero-padded to 30 s, as in infer.py) → encoder blocks at 1500 frames = 50 Hz.
  ``encoder.NN`` = raw output of ``speech_encoder.blocks[NN]`` (hooks during ``encode_speech``; ``ln_post``
  is not applied); frames that start inside the window are kept: ``ceil(d · 50)``.
* LM: ``((3000 + 1) // 2) // 5 = 300`` projected features per window (10 Hz, 100 ms each) — all of them,
  padding included, enter the LM as in infer.py; they sit at ``p_j + Σ_{i<j} (300 - 1)`` … ``+ 299`` where
  ``p_j`` is the index of the j-th -200 in the (unpadded) ``input_ids``. ``llm.NN`` = ``hidden_states[NN + 1]``
  there; kept: ``ceil(d · 10)`` tokens. Positions are cross-checked against the model's own labels
  (``IGNORE_INDEX`` at speech positions). ``llm.emb`` = the projected features themselves.
* One prompt per clip with one ``<speech>`` per window; the LM hidden states come from
  ``model(inputs_embeds=...)`` after ``prepare_inputs_labels_for_speech_and_text`` (exactly ``generate``'s path).

The mel is computed with the ``whisper`` package (openai-whisper) the model's own code imports, i.e. the
same function as infer.py; hearlike's tests run a test double of it (``tests/standins/llama_omni/site``).

Not verified offline (no hub access): the real ``config.json`` (``speech_encoder`` path,
``tokenizer_model_max_length``, ``tokenizer_padding_side``) and whether the ICTNLP tokenizer prepends
``<|begin_of_text|>`` (if it does, the official template yields two BOS tokens; the adapter reproduces
whatever ``tokenizer_speech_token`` produces).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.models.extract import SR, Adapter, Clip, LayerOut, LayerTaps, _np, frame_times, split_windows
from hearlike.models.registry import ModelEntry

SPEECH_PLACEHOLDER = "<speech>"  # omni_speech.constants.DEFAULT_SPEECH_TOKEN; tokenizer_speech_token splits on it
MODEL_CLASSES = ("OmniSpeech2SLlamaForCausalLM", "OmniSpeechLlamaForCausalLM")


def _refused(msg: str) -> Exception:
    from hearlike.models.loaders import RemoteCodeRefusedError

    return RemoteCodeRefusedError(msg)


def speech_encoder_file(entry: ModelEntry, model_dir: Path, configured: str, marker: dict[str, Any]) -> Path:
    """The openai-whisper checkpoint named by ``config.speech_encoder``, inside ``model_dir`` and pinned.

    The real config names it relative to the working directory of the scripts (README:
    ``models/speech_encoder/large-v3.pt``); here a relative path is taken relative to ``model_dir``. The file
    must be listed in the model marker with the same sha256 (it is model weights outside the hub revision).
    """
    from hearlike.io import sha256_file

    path = Path(configured)
    path = path if path.is_absolute() else model_dir / path
    if not path.is_file():
        raise FileNotFoundError(
            f"{entry.key}: speech encoder checkpoint {configured!r} (config.speech_encoder) not found at {path}; "
            "put openai-whisper's large-v3.pt there (README of ictnlp/LLaMA-Omni, step 2)")
    try:
        rel = path.resolve().relative_to(model_dir.resolve()).as_posix()
    except ValueError as err:
        raise _refused(f"{entry.key}: speech encoder {path} lies outside {model_dir}, so it is not pinned") from err
    want = marker.get("files", {}).get(rel)
    if want is None:
        raise _refused(f"{entry.key}: speech encoder {rel} is not recorded in {model_dir}'s marker")
    if sha256_file(path) != want:
        raise _refused(f"{entry.key}: speech encoder {rel} was modified after download (sha256 differs)")
    return path


def load(entry: ModelEntry, model_dir: Path, *, device: str, dtype: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` as ``omni_speech.model.builder.load_pretrained_model`` builds them, offline.

    Differences, all deliberate: ``local_files_only``; the requested dtype instead of a hard-coded float16;
    the encoder checkpoint path resolved inside ``model_dir`` and checked against the marker.
    """
    import transformers as tf

    from hearlike.models.tiny import read_model_marker

    model_dir = Path(model_dir)
    marker = read_model_marker(model_dir) or {}
    # check_package_code has already matched a pinned revision against the marker; the weights of an
    # unpinned entry are refused here as well.
    if not entry.pinned:
        raise _refused(f"{entry.key}: refused: {model_dir} holds {marker.get('hub_id')}@{marker.get('revision')}, "
                       f"the registry pins {entry.hub_id}@{entry.revision} (pin a 40-hex revision)")
    if entry.model_class not in MODEL_CLASSES:
        raise ValueError(f"{entry.key}: model_class must be one of {MODEL_CLASSES}, got {entry.model_class!r}")
    omni_model = importlib.import_module("omni_speech.model")  # registers the omni_speech config types
    encoder_builder = importlib.import_module("omni_speech.model.speech_encoder.builder")
    cls = getattr(omni_model, entry.model_class)
    config = cls.config_class.from_pretrained(model_dir, local_files_only=True)
    config.speech_encoder = str(speech_encoder_file(entry, model_dir, config.speech_encoder, marker))
    tokenizer = tf.AutoTokenizer.from_pretrained(model_dir, use_fast=False, local_files_only=True)
    from hearlike.models.loaders import dtype_kwarg

    dtype_kw = dtype_kwarg()
    model = cls.from_pretrained(model_dir, config=config, low_cpu_mem_usage=False, local_files_only=True,
                                **{dtype_kw: dtype})
    model.to(device)
    # As builder.py: the encoder built inside __init__ does not survive weight initialisation; reload it.
    model.get_model().speech_encoder = encoder_builder.build_speech_encoder(model.config)
    model.get_model().speech_encoder.to(device=device, dtype=dtype)
    model.eval()
    return model, tokenizer


class LlamaOmniAdapter(Adapter):
    """Whisper-large-v3 blocks (50 Hz) and Llama-3.1 layers at the 10 Hz speech features (see module doc)."""

    exact_batching = True  # encoder windows are independent; LM rows are right-padded (causal, masked)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        one = (self.entry.audio_placeholder or "").replace("{n}", "1")
        if one.count(SPEECH_PLACEHOLDER) != 1 or SPEECH_PLACEHOLDER in (self.entry.prompt or ""):
            raise ValueError(f"{self.entry.key}: audio_placeholder must contain {SPEECH_PLACEHOLDER!r} exactly once "
                             f"and the prompt none (LLaMA-Omni's tokenizer_speech_token splits the prompt there); "
                             f"got placeholder {self.entry.audio_placeholder!r}")
        self.constants = importlib.import_module("omni_speech.constants")
        self.tokenize = importlib.import_module("omni_speech.datasets.preprocess").tokenizer_speech_token
        self.whisper = importlib.import_module("whisper")
        self.k = int(self.model.get_speech_projector().k)
        self.n_mels = int(self.model.get_speech_encoder().conv1.in_channels)

    def _prompt(self, n_windows: int) -> str:
        ph = "".join(self.entry.audio_placeholder.replace("{n}", str(i + 1)) for i in range(n_windows))
        return self.entry.prompt.replace("{audio}", ph)

    def mel(self, segment: np.ndarray) -> Any:
        """``[3000, n_mels]`` log-mel of one window, exactly as infer.py (``input_type mel``) builds it."""
        w = self.whisper
        return w.log_mel_spectrogram(w.pad_or_trim(np.asarray(segment, np.float32)), n_mels=self.n_mels).permute(1, 0)

    def inputs(self, clips: Sequence[Clip]) -> dict[str, Any]:
        """Windows, mels, token ids and the expected speech spans of a batch (CPU tensors)."""
        import torch

        win = self.window_s(float(self.whisper.audio.CHUNK_LENGTH))
        per_clip = [split_windows(c.audio, win) for c in clips]
        mels = [self.mel(seg) for w in per_clip for _, seg in w]
        speech_lengths = torch.tensor([m.shape[0] for m in mels], dtype=torch.long)  # infer.py: padded length
        n_enc = [int(v) for v in (speech_lengths + 1) // 2]           # encode_speech's formula
        n_tok = [v // self.k for v in n_enc]
        rows = [self.tokenize(self._prompt(len(w)), self.processor, return_tensors="pt") for w in per_clip]
        width = max(len(r) for r in rows)
        pad = self.processor.pad_token_id if self.processor.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        spans: list[list[tuple[int, int]]] = []
        limit = getattr(self.model.config, "tokenizer_model_max_length", None)
        item = 0
        for b, r in enumerate(rows):
            input_ids[b, :len(r)] = r
            attention_mask[b, :len(r)] = 1
            marks = np.flatnonzero(r.numpy() == self.constants.SPEECH_TOKEN_INDEX)
            if len(marks) != len(per_clip[b]):
                raise RuntimeError(f"{self.entry.key}: prompt has {len(marks)} speech marks for "
                                   f"{len(per_clip[b])} windows")
            row, shift = [], 0
            for p in marks:
                row.append((int(p) + shift, n_tok[item]))
                shift += n_tok[item] - 1
                item += 1
            spans.append(row)
            total = len(r) + shift
            if limit is not None and total > int(limit):
                raise ValueError(f"{self.entry.key}: sentence {clips[b].sid}: {total} LM positions exceed the model's "
                                 f"tokenizer_model_max_length {limit}, which would cut speech features; "
                                 "use fewer or longer windows (window_s) or shorter clips")
        return {"per_clip": per_clip, "speech": torch.stack(mels), "speech_lengths": speech_lengths,
                "n_enc": n_enc, "n_tok": n_tok, "input_ids": input_ids, "attention_mask": attention_mask,
                "spans": spans}

    def forward(self, inp: dict[str, Any]) -> tuple[Any, Any, Any]:
        """``(outputs, new_labels, new_attention_mask)``: preparation + LM forward, as ``generate`` does."""
        import torch

        labels = torch.zeros_like(inp["input_ids"])  # any id != IGNORE_INDEX: speech positions come back ignored
        dev = self._to_device({"input_ids": inp["input_ids"], "attention_mask": inp["attention_mask"],
                               "labels": labels, "speech": inp["speech"], "speech_lengths": inp["speech_lengths"]})
        _, position_ids, attn, _, embeds, new_labels = self.model.prepare_inputs_labels_for_speech_and_text(
            dev["input_ids"], None, dev["attention_mask"], None, dev["labels"], dev["speech"], dev["speech_lengths"])
        out = self.model(inputs_embeds=embeds, attention_mask=attn, position_ids=position_ids,
                         output_hidden_states=True, use_cache=False, return_dict=True)
        return out, new_labels, attn

    def run(self, clips: Sequence[Clip]) -> list[LayerOut]:
        import torch

        te, tl = self.entry.targets["encoder"], self.entry.targets["llm"]
        inp = self.inputs(clips)
        raw_llm = self.settings["llm_last_layer"] == "raw"
        with torch.inference_mode(), LayerTaps(self.layers["encoder"], pre_first=self.emb) as et, \
                LayerTaps(self.layers["llm"] if raw_llm else []) as lt:
            out, new_labels, attn = self.forward(inp)
        enc = [(name, _np(o)) for name, o in et.named("encoder")] if "encoder" in self.groups else []
        for name, arr in enc:
            if arr.shape[1] != max(inp["n_enc"]):
                raise RuntimeError(f"{self.entry.key}: {name} has {arr.shape[1]} frames, encode_speech expects "
                                   f"{max(inp['n_enc'])}")
        llm_src = self.llm_sources(out.hidden_states, last=lt.single()[-1] if raw_llm else None)
        ignored = ((new_labels == self.constants.IGNORE_INDEX) & attn.bool()).cpu().numpy()
        results: list[LayerOut] = [{} for _ in clips]
        item = 0
        for ci, wins in enumerate(inp["per_clip"]):
            items = list(range(item, item + len(wins)))
            item += len(wins)
            spans = inp["spans"][ci]
            expect = np.concatenate([np.arange(s, s + n) for s, n in spans])
            if not np.array_equal(np.flatnonzero(ignored[ci]), expect):
                raise RuntimeError(f"{self.entry.key}: sentence {clips[ci].sid}: speech positions of the model's own "
                                   "labels differ from the -200 positions + feature counts")
            enc_st: dict[str, list[np.ndarray]] = {name: [] for name, _ in enc}
            enc_tm, sel, llm_tm = [], [], []
            for r, (off, seg), (start, n) in zip(items, wins, spans, strict=True):
                end = off + len(seg) / SR
                keep, times = frame_times(inp["n_enc"][r], rate_hz=te.rate_hz, frame_length_s=te.frame_length,
                                          offset_s=off, end_s=end)
                for name, arr in enc:
                    enc_st[name].append(arr[r, keep])
                enc_tm.append(times)
                keep, times = frame_times(n, rate_hz=tl.rate_hz, frame_length_s=tl.frame_length, offset_s=off,
                                          end_s=end)
                sel.append(start + keep)
                llm_tm.append(times)
            for name, _ in enc:
                results[ci][name] = (np.concatenate(enc_st[name]), np.concatenate(enc_tm))
            if "llm" in self.groups:
                idx, times = np.concatenate(sel), np.concatenate(llm_tm)
                for name, h in llm_src:
                    results[ci][name] = (_np(h[ci, idx]), times)
        return results


ADAPTER = LlamaOmniAdapter
