"""Tiny random models built offline from shrunken real configs (demo models and test doubles).

Every builder seeds torch before constructing the model, so two builds with the same settings write
byte-identical ``model.safetensors``. Each built directory holds the model, its processor or feature
extractor (and tokenizer for audio LLMs) and a ``hearlike_model.json`` marker whose ``revision`` is a
content hash of the files (the local stand-in for a pinned hub commit).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.models.registry import get_entry, repo_root

MARKER = "hearlike_model.json"
ARCHS = ("whisper", "wavlm", "hubert", "wav2vec2", "qwen2_audio", "audioflamingo3", "granite_speech", "uvlike")
SR = 16000

# Special tokens each tiny tokenizer knows (the real models' placeholder spellings).
_SPECIALS = {
    "qwen2_audio": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"],
    "audioflamingo3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"],
    "granite_speech": ["<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|audio|>"],
    "uvlike": ["<|end_of_text|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
               "<|end_header_id|>", "<|audio|>"],
}


# ----------------------------------------------------------------------------------------- audio
def speechlike_audio(duration_s: float, *, seed: int, sr: int = SR) -> np.ndarray:
    """Deterministic speech-like float32 audio: voiced harmonic syllables with moving F0 and formants,
    noise-burst consonants and short pauses (for tests and checks; not real speech)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = round(duration_s * sr)
    out = np.zeros(n, dtype=np.float64)
    pos = int(0.05 * sr)
    f0_base = rng.uniform(95.0, 210.0)
    while pos < n:
        kind = rng.choice(["voiced", "voiced", "voiced", "burst", "pause"])
        seg = int(rng.uniform(0.06, 0.28) * sr)
        seg = min(seg, n - pos)
        if seg <= 8:
            break
        t = np.arange(seg) / sr
        if kind == "voiced":
            f0 = f0_base * (1.0 + 0.15 * rng.standard_normal()) * (1.0 + rng.uniform(-0.3, 0.3) * t / t[-1])
            phase = 2 * np.pi * np.cumsum(f0) / sr
            src = sum((1.0 / h) * np.sin(h * phase) for h in range(1, 16))
            x = src
            for fc, bw in ((rng.uniform(300, 900), 90.0), (rng.uniform(900, 2400), 120.0),
                           (rng.uniform(2400, 3400), 180.0)):
                r = np.exp(-np.pi * bw / sr)
                a = [1.0, -2 * r * np.cos(2 * np.pi * fc / sr), r * r]
                x = x + 0.6 * lfilter([1.0 - r], a, src)
            env = np.sin(np.pi * np.arange(seg) / seg) ** 0.6
            out[pos:pos + seg] = 0.3 * x * env / (np.abs(x).max() + 1e-9)
        elif kind == "burst":
            noise = rng.standard_normal(seg)
            fc = rng.uniform(2500, 6000)
            r = np.exp(-np.pi * 800.0 / sr)
            x = lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], noise)
            env = np.exp(-np.arange(seg) / (0.25 * seg))
            out[pos:pos + seg] = 0.15 * x * env / (np.abs(x).max() + 1e-9)
        pos += seg
    out += 1e-3 * rng.standard_normal(n)
    return out.astype(np.float32)


# ------------------------------------------------------------------------------------ tokenizers
def _byte_tokenizer(specials: list[str], *, pad: str, audio_token: str | None = None) -> Any:
    """Byte-level BPE over the 256 byte symbols plus atomic special tokens (no hub files needed)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    kwargs: dict[str, Any] = {"pad_token": pad, "eos_token": pad}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    fast.padding_side = "right"
    return fast


# -------------------------------------------------------------------------------------- configs
def _llm_cfg(model_type: str, *, hidden: int, layers: int, heads: int, ffn: int, vocab: int,
             init: float, **extra: Any) -> dict[str, Any]:
    return {"model_type": model_type, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": max(1, heads // 2),
            "intermediate_size": ffn, "vocab_size": vocab, "max_position_embeddings": 4096,
            "initializer_range": init, "tie_word_embeddings": False, **extra}


def _wav2vec2_family_cfg(arch: str, *, d: int, layers: int, heads: int, ffn: int, init: float,
                         stable_layer_norm: bool) -> Any:
    from transformers import HubertConfig, Wav2Vec2Config, WavLMConfig

    cls = {"wavlm": WavLMConfig, "hubert": HubertConfig, "wav2vec2": Wav2Vec2Config}[arch]
    # Real conv front end (kernel 10,3,3,3,3,2,2 / stride 5,2,2,2,2,2,2: 20 ms hop, 25 ms receptive field)
    # with narrow channels.
    kw: dict[str, Any] = dict(
        hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
        conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, initializer_range=init,
        feat_extract_norm="layer" if stable_layer_norm else "group", do_stable_layer_norm=stable_layer_norm,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        layerdrop=0.0, mask_time_prob=0.0, vocab_size=32,
    )
    if arch == "wavlm":
        kw.update(num_buckets=32, max_bucket_distance=100)
    return cls(**kw)


def build_tiny(*, arch: str, out_dir: str | Path, d_model: int = 64, encoder_layers: int = 2,
               llm_layers: int = 2, llm_hidden: int | None = None, attention_heads: int = 4,
               ffn_dim: int = 128, seed: int = 0, initializer_range: float = 0.02,
               chunk_length_s: int = 30, num_mel_bins: int | None = None, stable_layer_norm: bool = True,
               depth_gain: float = 1.0, hub_id: str | None = None) -> Path:
    """Build, seed and save a tiny random model of ``arch`` with its processor into ``out_dir``.

    ``chunk_length_s`` shrinks the Whisper-style 30 s window (encoder positions = 50 × chunk) so tests
    can exercise windowing on short clips. ``depth_gain`` g multiplies the output projections of block l
    (attention out and MLP down projections) by g**l: in a random pre-norm residual network every block
    adds an update of about the same size to a growing stream, so deeper layers look alike; growing
    updates keep adjacent layers distinguishable (needed by the demo's planted layer effects).
    Returns ``out_dir``.
    """
    import torch
    import transformers as tf

    if arch not in ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}; expected one of {ARCHS}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    hidden = int(llm_hidden or d_model)
    n_src = 50 * int(chunk_length_s)
    init = float(initializer_range)

    torch.manual_seed(int(seed))
    if arch == "whisper":
        mels = num_mel_bins or 80
        cfg = tf.WhisperConfig(
            d_model=d_model, encoder_layers=encoder_layers, encoder_attention_heads=attention_heads,
            encoder_ffn_dim=ffn_dim, decoder_layers=1, decoder_attention_heads=attention_heads,
            decoder_ffn_dim=ffn_dim, num_mel_bins=mels, max_source_positions=n_src, max_target_positions=32,
            vocab_size=64, init_std=init, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            decoder_start_token_id=1, begin_suppress_tokens=None, suppress_tokens=None)
        model = tf.WhisperModel(cfg)
        proc = tf.WhisperFeatureExtractor(feature_size=mels, chunk_length=chunk_length_s)
    elif arch in ("wavlm", "hubert", "wav2vec2"):
        cfg = _wav2vec2_family_cfg(arch, d=d_model, layers=encoder_layers, heads=attention_heads, ffn=ffn_dim,
                                   init=init, stable_layer_norm=stable_layer_norm)
        model = {"wavlm": tf.WavLMModel, "hubert": tf.HubertModel, "wav2vec2": tf.Wav2Vec2Model}[arch](cfg)
        proc = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0,
                                           do_normalize=True, return_attention_mask=stable_layer_norm)
    elif arch in ("qwen2_audio", "audioflamingo3"):
        mels = num_mel_bins or 128
        specials = _SPECIALS[arch]
        tok = _byte_tokenizer(specials, pad="<|endoftext|>")
        audio_tok = "<|AUDIO|>" if arch == "qwen2_audio" else "<sound>"
        text = _llm_cfg("qwen2", hidden=hidden, layers=llm_layers, heads=attention_heads, ffn=ffn_dim,
                        vocab=len(tok), init=init)
        fe = tf.WhisperFeatureExtractor(feature_size=mels, chunk_length=chunk_length_s)
        if arch == "qwen2_audio":
            audio = dict(d_model=d_model, encoder_layers=encoder_layers, encoder_attention_heads=attention_heads,
                         encoder_ffn_dim=ffn_dim, num_mel_bins=mels, max_source_positions=n_src,
                         initializer_range=init)
            cfg = tf.Qwen2AudioConfig(audio_config=audio, text_config=text,
                                      audio_token_id=tok.convert_tokens_to_ids(audio_tok))
            model = tf.Qwen2AudioForConditionalGeneration(cfg)
            proc = tf.Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok)
        else:
            audio = dict(hidden_size=d_model, num_hidden_layers=encoder_layers, num_attention_heads=attention_heads,
                         intermediate_size=ffn_dim, num_mel_bins=mels, max_source_positions=n_src,
                         initializer_range=init)
            cfg = tf.AudioFlamingo3Config(audio_config=audio, text_config=text,
                                          audio_token_id=tok.convert_tokens_to_ids(audio_tok))
            model = tf.AudioFlamingo3ForConditionalGeneration(cfg)
            proc = tf.AudioFlamingo3Processor(fe, tok, audio_token=audio_tok)
    elif arch == "granite_speech":
        from hearlike.models.granite_fe import TorchGraniteSpeechFeatureExtractor

        tok = _byte_tokenizer(_SPECIALS[arch], pad="<|end_of_text|>")
        enc = dict(input_dim=160, num_layers=encoder_layers, hidden_dim=d_model, feedforward_mult=2,
                   num_heads=attention_heads, output_dim=16, context_size=200, max_pos_emb=512,
                   conv_kernel_size=15, dropout=0.0)
        qformer = dict(model_type="blip_2_qformer", hidden_size=hidden, num_hidden_layers=1,
                       num_attention_heads=attention_heads, intermediate_size=ffn_dim, encoder_hidden_size=d_model,
                       cross_attention_frequency=1, max_position_embeddings=64, initializer_range=init,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        text = _llm_cfg("granite", hidden=hidden, layers=llm_layers, heads=attention_heads, ffn=ffn_dim,
                        vocab=len(tok), init=init)
        cfg = tf.GraniteSpeechConfig(encoder_config=enc, projector_config=qformer, text_config=text,
                                     audio_token_index=tok.convert_tokens_to_ids("<|audio|>"),
                                     has_lora_adapter=False, window_size=15, downsample_rate=5,
                                     initializer_range=init)
        model = tf.GraniteSpeechForConditionalGeneration(cfg)
        proc = tf.GraniteSpeechProcessor(audio_processor=TorchGraniteSpeechFeatureExtractor(), tokenizer=tok)
    else:  # uvlike: the project's own remote-code model
        return _build_uvlike(out_dir=out_dir, d_model=d_model, encoder_layers=encoder_layers, llm_layers=llm_layers,
                             hidden=hidden, heads=attention_heads, ffn=ffn_dim, init=init,
                             mels=num_mel_bins or 80, seed=seed, hub_id=hub_id)
    model.eval()
    apply_depth_gain(model, depth_gain)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    write_model_marker(out_dir, hub_id=hub_id, created_by="hearlike.models.tiny",
                       extra={"arch": arch, "seed": int(seed)})
    return out_dir


# Output projections of a block (the parts whose scale sets the size of the block's residual update).
_OUT_PROJ = re.compile(r"(^|\.)(out_proj|fc2|o_proj|down_proj|output_dense)\.(weight|bias)$")


def _layer_lists(model: Any) -> list[Any]:
    import torch

    return [m for name, m in model.named_modules()
            if isinstance(m, torch.nn.ModuleList) and name.endswith("layers") and len(m) > 1]


def apply_depth_gain(model: Any, gain: float) -> None:
    """Scale block l's output projections by ``gain ** l`` in every ``*.layers`` stack (in place)."""
    import torch

    if gain == 1.0:
        return
    with torch.no_grad():
        for layers in _layer_lists(model):
            for depth, block in enumerate(layers):
                for name, p in block.named_parameters():
                    if _OUT_PROJ.search(name):
                        p.mul_(float(gain) ** depth)


def _import_uvlike(code_dir: Path) -> tuple[Any, Any, Any]:
    """Import the uvlike package from ``resources/tiny_remote_code`` (its modules keep their file names)."""
    parent = str(code_dir)
    added = parent not in sys.path
    if added:
        sys.path.insert(0, parent)
    try:
        cfg_mod = importlib.import_module("uvlike.configuration_uvlike")
        mdl_mod = importlib.import_module("uvlike.modeling_uvlike")
        prc_mod = importlib.import_module("uvlike.processing_uvlike")
    finally:
        if added:
            sys.path.remove(parent)
    return cfg_mod.UVLikeConfig, mdl_mod.UVLikeModel, prc_mod.UVLikeProcessor


def _build_uvlike(*, out_dir: Path, d_model: int, encoder_layers: int, llm_layers: int, hidden: int, heads: int,
                  ffn: int, init: float, mels: int, seed: int, hub_id: str | None) -> Path:
    import torch
    import transformers as tf

    cfg_cls, model_cls, proc_cls = _import_uvlike(repo_root() / "resources" / "tiny_remote_code")
    tok = _byte_tokenizer(_SPECIALS["uvlike"], pad="<|end_of_text|>")
    audio = tf.WhisperConfig(d_model=d_model, encoder_layers=encoder_layers, encoder_attention_heads=heads,
                             encoder_ffn_dim=ffn, num_mel_bins=mels, max_source_positions=1500,
                             decoder_layers=1, init_std=init, dropout=0.0)
    text = tf.LlamaConfig(**{k: v for k, v in _llm_cfg("llama", hidden=hidden, layers=llm_layers, heads=heads,
                                                       ffn=ffn, vocab=len(tok), init=init).items()
                             if k != "model_type"})
    cfg = cfg_cls(audio_config=audio, text_config=text, stack_factor=8,
                  audio_token_id=tok.convert_tokens_to_ids("<|audio|>"), projector_hidden=hidden,
                  initializer_range=init)
    torch.manual_seed(int(seed))
    model = model_cls(cfg).eval()
    cfg_cls.register_for_auto_class()
    model_cls.register_for_auto_class("AutoModel")
    proc_cls.register_for_auto_class("AutoProcessor")
    fe = tf.WhisperFeatureExtractor(feature_size=mels, chunk_length=30)
    proc = proc_cls(feature_extractor=fe, tokenizer=tok, stack_factor=8)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    write_model_marker(out_dir, hub_id=hub_id, created_by="hearlike.models.tiny",
                       extra={"arch": "uvlike", "seed": int(seed)})
    return out_dir


# ---------------------------------------------------------------------------------------- marker
def file_hashes(model_dir: str | Path) -> dict[str, str]:
    """sha256 of every file under ``model_dir`` except the marker (relative POSIX paths, sorted)."""
    from hearlike.io import sha256_file

    root = Path(model_dir)
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER and "__pycache__" not in p.parts
            and ".cache" not in p.parts}


def content_revision(hashes: Mapping[str, str]) -> str:
    """A 40-hex content hash of a file set (the local stand-in for a hub commit)."""
    text = "".join(f"{k}\0{v}\n" for k, v in sorted(hashes.items()))
    return hashlib.sha1(text.encode()).hexdigest()


def write_model_marker(model_dir: str | Path, *, hub_id: str | None, created_by: str,
                       revision: str | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``hearlike_model.json`` (hub id, revision, per-file sha256) into ``model_dir``."""
    hashes = file_hashes(model_dir)
    marker = {"hub_id": hub_id, "revision": revision or content_revision(hashes), "created_by": created_by,
              "files": hashes, **dict(extra or {})}
    (Path(model_dir) / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    return marker


def read_model_marker(model_dir: str | Path) -> dict[str, Any] | None:
    """The marker of ``model_dir`` or None."""
    p = Path(model_dir) / MARKER
    return json.loads(p.read_text()) if p.exists() else None


# ------------------------------------------------------------------------------------ demo entry
def build_demo_model(*, key: str, registry: Path, out_dir: Path) -> None:
    """Build the registry's demo model ``key`` (entry with ``builder: {kind: tiny, ...}``) into ``out_dir``."""
    entry = get_entry(registry, key)
    if entry.builder is None:
        raise ValueError(f"{key}: not a demo model (no builder); real models are downloaded with "
                         f"`python -m hearlike.models.download {key} --dest DIR`")
    b = dict(entry.builder)
    b.pop("kind")
    build_tiny(out_dir=out_dir, hub_id=None, **b)


# ------------------------------------------------------------------------ registry entries (tests)
# Per tiny arch: family, loader, classes, layer-module paths and true rates of the real model family.
_TINY_SPECS: dict[str, dict[str, Any]] = {
    "whisper": dict(kind="speech_encoder", family="whisper_encoder", loader="native", model_class="WhisperModel",
                    processor_class="WhisperFeatureExtractor", window_s=30,
                    encoder=("encoder.layers", 50.0, None)),
    "wavlm": dict(kind="speech_encoder", family="wav2vec2_like", loader="native", model_class="WavLMModel",
                  processor_class="Wav2Vec2FeatureExtractor", window_s=None, encoder=("encoder.layers", 50.0, 0.025)),
    "hubert": dict(kind="speech_encoder", family="wav2vec2_like", loader="native", model_class="HubertModel",
                   processor_class="Wav2Vec2FeatureExtractor", window_s=None, encoder=("encoder.layers", 50.0, 0.025)),
    "wav2vec2": dict(kind="speech_encoder", family="wav2vec2_like", loader="native", model_class="Wav2Vec2Model",
                     processor_class="Wav2Vec2FeatureExtractor", window_s=None,
                     encoder=("encoder.layers", 50.0, 0.025)),
    "qwen2_audio": dict(kind="audio_llm", family="qwen2_audio", loader="native",
                        model_class="Qwen2AudioForConditionalGeneration", processor_class="Qwen2AudioProcessor",
                        window_s=30, encoder=("model.audio_tower.layers", 50.0, None),
                        llm=("model.language_model.layers", 25.0), prompt="{audio}",
                        audio_placeholder="<|audio_bos|><|AUDIO|><|audio_eos|>"),
    "audioflamingo3": dict(kind="audio_llm", family="audioflamingo3", loader="native",
                           model_class="AudioFlamingo3ForConditionalGeneration",
                           processor_class="AudioFlamingo3Processor", window_s=30,
                           encoder=("model.audio_tower.layers", 50.0, None), llm=("model.language_model.layers", 25.0),
                           prompt="<|im_start|>user\n{audio}<|im_end|>\n<|im_start|>assistant\n",
                           audio_placeholder="<sound>"),
    "granite_speech": dict(kind="audio_llm", family="granite_speech", loader="native",
                           model_class="GraniteSpeechForConditionalGeneration", processor_class="GraniteSpeechProcessor",
                           window_s=None, encoder=("model.encoder.layers", 50.0, None),
                           llm=("model.language_model.layers", 10.0),
                           prompt="<|start_of_role|>user<|end_of_role|>{audio}<|end_of_text|>\n"
                                  "<|start_of_role|>assistant<|end_of_role|>",
                           audio_placeholder="<|audio|>"),
    "uvlike": dict(kind="audio_llm", family="ultravox", loader="remote_code", model_class="UVLikeModel",
                   processor_class="UVLikeProcessor", window_s=30, encoder=("audio_tower.layers", 50.0, None),
                   llm=("language_model.model.layers", 6.25),
                   prompt="<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{audio}<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n",
                   audio_placeholder="<|audio|>"),
}


def tiny_entry(*, arch: str, revision: str | None = None, batch_size: int = 4, **builder: Any) -> dict[str, Any]:
    """A registry entry (schema-valid dict, ``role: demo``) for a tiny model of ``arch`` built with ``builder``.

    For ``uvlike`` (remote code) pass the built directory's marker ``revision``.
    """
    spec = _TINY_SPECS[arch]
    b = {"kind": "tiny", "arch": arch, "d_model": 64, "encoder_layers": 2, "seed": 0, "initializer_range": 0.02,
         **builder}
    mod, rate, flen = spec["encoder"]
    enc: dict[str, Any] = {"n_layers": b["encoder_layers"], "hidden_size": b["d_model"], "rate_hz": rate,
                           "modules": mod, "source": "hooks"}
    if flen:
        enc["frame_length_s"] = flen
    entry: dict[str, Any] = {
        "display_name": f"tiny {arch}", "role": "demo", "kind": spec["kind"], "hub_id": None, "revision": revision,
        "loader": spec["loader"], "family": spec["family"], "adapter": "implemented",
        "model_class": spec["model_class"], "processor_class": spec["processor_class"], "dtype": "float32",
        "env": "main", "sample_rate": SR, "window_s": spec["window_s"], "targets": {"encoder": enc},
        "resources": {"gpus": 0, "mem_mb": 1000, "runtime_min": 1, "batch_size": batch_size}, "builder": b,
    }
    if spec["kind"] == "audio_llm":
        b.setdefault("llm_layers", 2)
        lmod, lrate = spec["llm"]
        entry["targets"]["llm"] = {"n_layers": b["llm_layers"], "hidden_size": b.get("llm_hidden", b["d_model"]),
                                   "rate_hz": lrate, "modules": lmod, "source": "hidden_states"}
        entry["prompt"] = spec["prompt"]
        entry["audio_placeholder"] = spec["audio_placeholder"]
    return entry
