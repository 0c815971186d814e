"""MiniCPM-o-2.6 adapter (``hearlike.models.families.minicpm_o``) on a tiny stand-in of its remote code.

The stand-in (``tests/standins/minicpm_o``) keeps the real remote code's interface and bookkeeping (30 s
pieces, trimmed mel rows, ``<|audio_start|><unk>…<|audio_end|>`` per 1 s chunk, ``audio_bounds``, chunk-masked
``apm``, ×2 average pooling, ``forward(data)``). It is built into a model directory with a marker and loaded
through ``load_model`` (``trust_remote_code``, pinned revision), from a registry entry copied from the real one.
One 31.3 s clip is needed because the real processor's 30 s split is hard-coded.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hearlike.models.cache import read_layer  # noqa: E402
from hearlike.models.extract import extract_activations  # noqa: E402
from hearlike.models.loaders import RemoteCodeRefusedError, load_model  # noqa: E402
from hearlike.models.registry import default_registry_path, get_entry, layer_names  # noqa: E402
from hearlike.models.tiny import _byte_tokenizer, read_model_marker, speechlike_audio, write_model_marker  # noqa: E402

SR = 16000
KEY = "minicpm-o-2_6"
TEST_KEY = "minicpm-o-2_6-standin"
STANDIN = Path(__file__).parent / "standins" / "minicpm_o"
REMOTE_FILES = ["configuration_minicpm.py", "modeling_minicpmo.py", "processing_minicpmo.py",
                "image_processing_minicpmv.py", "tokenization_minicpmo_fast.py"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<image>", "</image>", "<slice>", "</slice>",
            "<image_id>", "</image_id>", "<|audio_start|>", "<|audio_end|>", "<|spk_bos|>", "<|spk_eos|>",
            "<|tts_bos|>", "<|tts_eos|>"]
ENC_D, LLM_D = 64, 32
SHORT = {1: 2.0, 2: 1.37, 3: 0.73}
LONG_S = 31.3


def build_standin(out: Path, *, seed: int = 0) -> Path:
    """A tiny MiniCPM-o-style model directory in the hub repo's layout (remote code + auto_map + marker)."""
    import transformers as tf

    out.mkdir(parents=True)
    for f in REMOTE_FILES:
        shutil.copy2(STANDIN / f, out / f)
    tok = _byte_tokenizer(SPECIALS, pad="<|endoftext|>")
    tok.save_pretrained(out)
    tc = json.loads((out / "tokenizer_config.json").read_text())
    tc.update(tokenizer_class="MiniCPMOTokenizerFast", unk_token="<unk>",
              auto_map={"AutoTokenizer": [None, "tokenization_minicpmo_fast.MiniCPMOTokenizerFast"]})
    (out / "tokenizer_config.json").write_text(json.dumps(tc, indent=1))
    # One preprocessor_config.json for the image processor (auto_map) and the default Whisper features.
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "MiniCPMVImageProcessor", "processor_class": "MiniCPMOProcessor",
        "auto_map": {"AutoProcessor": "processing_minicpmo.MiniCPMOProcessor",
                     "AutoImageProcessor": "image_processing_minicpmv.MiniCPMVImageProcessor"},
        "version": 2.6, "max_slice_nums": 9, "scale_resolution": 448, "patch_size": 14, "image_feature_size": 64},
        indent=1))
    cfg = {"model_type": "minicpmo", "architectures": ["MiniCPMO"],
           "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMOConfig", "AutoModel": "modeling_minicpmo.MiniCPMO"},
           "hidden_size": LLM_D, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": len(tok), "max_position_embeddings": 4096,
           "tie_word_embeddings": False, "initializer_range": 0.02, "rms_norm_eps": 1e-6,
           # encoder_ffn_dim // 4 == d_model, as in Whisper-medium (the projector's input size is ffn / 4).
           "audio_config": {"d_model": ENC_D, "encoder_layers": 2, "encoder_attention_heads": 4,
                            "encoder_ffn_dim": 4 * ENC_D, "num_mel_bins": 80, "max_source_positions": 1500,
                            "decoder_layers": 1},
           "audio_pool_step": 2, "audio_chunk_length": 1.0, "chunk_input": True,
           "init_vision": False, "init_audio": True, "init_tts": False}
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    config = tf.AutoConfig.from_pretrained(out, trust_remote_code=True, local_files_only=True)
    torch.manual_seed(seed)
    model = tf.AutoModel.from_config(config, trust_remote_code=True)
    model.config.init_vision = model.config.init_tts = True  # the hub config.json enables all parts
    model.save_pretrained(out)
    write_model_marker(out, hub_id="openbmb/MiniCPM-o-2_6", created_by="tests/test_family_minicpm_o.py")
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import transformers.dynamic_module_utils as dmu
    import transformers.utils.hub as hub

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("minicpmo")
    mp = pytest.MonkeyPatch()
    # load_model points the dynamic-module cache at HEARLIKE_HF_CACHE and extends sys.path: undo all of it.
    mp.setenv("HEARLIKE_HF_CACHE", str(root / "hf_cache"))
    mp.setenv("HF_MODULES_CACHE", str(root / "hf_cache" / "modules"))
    mp.setattr(dmu, "HF_MODULES_CACHE", dmu.HF_MODULES_CACHE)
    mp.setattr(hub, "HF_MODULES_CACHE", hub.HF_MODULES_CACHE)
    mp.setattr(sys, "path", list(sys.path))
    from hearlike.models.loaders import _set_modules_cache

    _set_modules_cache()
    model_dir = build_standin(root / "minicpmo_standin")
    reg = yaml.safe_load(default_registry_path().read_text())
    real = reg["models"][KEY]
    entry = json.loads(json.dumps(real))
    entry.update(revision=read_model_marker(model_dir)["revision"], adapter="implemented", dtype="float32",
                 resources={"gpus": 0, "mem_mb": 1000, "runtime_min": 1, "batch_size": 4})
    entry["targets"]["encoder"].update(n_layers=2, hidden_size=ENC_D)
    entry["targets"]["llm"].update(n_layers=2, hidden_size=LLM_D)
    reg["models"][TEST_KEY] = entry
    reg_path = root / "models.yaml"
    reg_path.write_text(yaml.safe_dump(reg, sort_keys=False))
    short = {sid: speechlike_audio(d, seed=sid) for sid, d in SHORT.items()}
    long_clip = speechlike_audio(LONG_S, seed=7)
    longs = {1: long_clip, 2: long_clip[30 * SR:].copy()}  # s2 = the 2nd 30 s piece on its own
    for name, clips in (("short", short), ("long", longs)):
        np.savez(root / f"{name}.npz", **{f"s{sid:04d}": a for sid, a in clips.items()})
    yield {"root": root, "registry": reg_path, "dir": model_dir, "real": real, "short": short, "long": longs,
           "results": {}}
    mp.undo()
    for name in [m for m in sys.modules if m.startswith("transformers_modules.minicpmo_standin")]:
        del sys.modules[name]


def run(env: Any, audio: str = "short", **kw: Any) -> tuple[dict[str, Any], dict[str, dict[int, Any]]]:
    """Extract (memoised per audio set + settings) and read every stored layer back."""
    tag = (audio, repr(sorted(kw.items())))
    if tag not in env["results"]:
        out = env["root"] / f"act-{len(env['results'])}"
        man = extract_activations(key=TEST_KEY, registry=env["registry"], model_dir=env["dir"],
                                  audio_npz=env["root"] / f"{audio}.npz", out_dir=out, device="cpu", **kw)
        layers = {m["name"]: read_layer(out / m["file"]) for m in man["layers"] + man["extra_layers"]}
        env["results"][tag] = (man, layers)
    return env["results"][tag]


def load(env: Any) -> tuple[Any, Any, Any]:
    entry = get_entry(env["registry"], TEST_KEY)
    model, proc = load_model(entry, env["dir"], device="cpu")
    return entry, model, proc


def counts(n_samples: int) -> tuple[int, int, int]:
    """(mel frames, encoder frames, audio tokens) of one ≤ 30 s piece, by the real code's formulas."""
    mel = math.ceil(n_samples / 160)
    enc = (mel - 1) // 2 + 1
    return mel, enc, (enc - 2) // 2 + 1


def model_inputs(entry: Any, proc: Any, audio: np.ndarray) -> tuple[Any, dict[str, Any]]:
    text = entry.prompt.replace("{audio}", entry.audio_placeholder)
    inputs = proc(text=[text], audios=[[audio]], chunk_input=True, sampling_rate=SR, return_tensors="pt")
    data = dict(inputs)
    data["position_ids"] = torch.arange(inputs["input_ids"].shape[1])[None]
    return inputs, data


def test_entry_keeps_real_paths_and_prompt(env: Any) -> None:
    entry = get_entry(env["registry"], TEST_KEY)
    real = env["real"]
    assert entry.targets["encoder"].modules == real["targets"]["encoder"]["modules"] == "apm.layers"
    assert entry.targets["llm"].modules == real["targets"]["llm"]["modules"] == "llm.model.layers"
    assert (entry.prompt, entry.audio_placeholder) == (real["prompt"], real["audio_placeholder"])
    assert entry.audio_placeholder == "(<audio>./</audio>)" and entry.model_class == "MiniCPMO"


def test_layers_frames_and_times(env: Any) -> None:
    man, layers = run(env)
    entry = get_entry(env["registry"], TEST_KEY)
    assert [m["name"] for m in man["layers"]] == layer_names(entry) == ["encoder.00", "encoder.01", "llm.00", "llm.01"]
    assert man["run"]["batch_size"] == 1  # adapter is not batch-exact (row-0 write in older hub revisions)
    for name, data in layers.items():
        t = entry.targets[name.split(".")[0]]
        assert sorted(data) == [1, 2, 3]
        for sid, (states, times) in data.items():
            n_samples = len(env["short"][sid])
            dur = n_samples / SR
            _, enc, tok = counts(n_samples)
            assert states.shape == ((enc if t.group == "encoder" else tok), t.hidden_size)
            assert abs(states.shape[0] - dur * t.rate_hz) <= 1.0 and np.all(np.isfinite(states))
            np.testing.assert_allclose(times[:, 0], np.arange(states.shape[0]) / t.rate_hz, atol=1e-9)
            np.testing.assert_allclose(times[:, 1], np.minimum(times[:, 0] + 1 / t.rate_hz, dur), atol=1e-9)


def test_audio_span_matches_processor_and_model(env: Any) -> None:
    """Slots = audio_bounds spans: <unk> between start/end tokens, ≤ 25 per 1 s chunk, count = model lengths."""
    entry, model, proc = load(env)
    tok = proc.tokenizer
    for audio in env["short"].values():
        inputs, _ = model_inputs(entry, proc, audio)
        ids = inputs["input_ids"][0].tolist()
        bounds = inputs["audio_bounds"][0].tolist()
        mel = int(inputs["audio_feature_lens"][0][0])
        _, n_tok = model._get_feat_extract_output_lengths(torch.tensor([mel]))
        assert mel == counts(len(audio))[0] and int(n_tok[0]) == counts(len(audio))[2]
        sizes = [e - s for s, e in bounds]
        assert sum(sizes) == int(n_tok[0]) and all(n == 25 for n in sizes[:-1]) and 0 < sizes[-1] <= 25
        assert len(bounds) == math.ceil(int(n_tok[0]) / 25)
        for s, e in bounds:
            assert ids[s - 1] == tok.audio_start_id and ids[e] == tok.audio_end_id
            assert set(ids[s:e]) == {tok.convert_tokens_to_ids("<unk>")}
        head, _, tail = entry.prompt.partition("{audio}")
        assert ids[:bounds[0][0] - 1] == tok.encode(head) and ids[bounds[-1][1] + 1:] == tok.encode(tail)


def test_llm_layers_are_hidden_states_at_audio_slots(env: Any) -> None:
    """llm.emb = the model's own audio embeddings (get_audio_embedding); llm.NN = hidden_states at the slots."""
    entry, model, proc = load(env)
    man, layers = run(env, settings={"store_embedding_layer": True, "store_dtype": "float32"})
    assert [m["name"] for m in man["extra_layers"]] == ["encoder.emb", "llm.emb"]
    for sid, audio in env["short"].items():
        inputs, data = model_inputs(entry, proc, audio)
        with torch.inference_mode():
            direct = torch.cat(model.get_audio_embedding(data, model.config.audio_chunk_length)[0]).numpy()
            out = model(data, output_hidden_states=True, use_cache=False)
        pos = np.concatenate([np.arange(s, e) for s, e in inputs["audio_bounds"][0].tolist()])
        emb, emb_t = layers["llm.emb"][sid]
        np.testing.assert_allclose(emb, direct, rtol=1e-4, atol=1e-5 * np.abs(direct).max())
        np.testing.assert_array_equal(emb_t, layers["llm.00"][sid][1])
        for i in range(2):
            ref = out.hidden_states[i + 1][0, pos].numpy()
            np.testing.assert_allclose(layers[f"llm.{i:02d}"][sid][0], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        # One slot off would pick a text token's embedding instead.
        shifted = out.hidden_states[0][0, pos + 1].numpy()
        assert float(np.abs(shifted - direct).max()) > 1e-3


def test_encoder_hooks_equal_chunk_masked_apm(env: Any) -> None:
    """Hooks = apm blocks under the model's 1 s block-causal mask; full attention differs; no final LN stored."""
    entry, model, proc = load(env)
    _, layers = run(env)
    audio = env["short"][1]  # 2 s: 100 encoder frames, two 50-frame chunks
    _, data = model_inputs(entry, proc, audio)
    from hearlike.models.extract import LayerTaps

    with torch.inference_mode(), LayerTaps(list(model.apm.layers)) as taps:
        model(data, output_hidden_states=True, use_cache=False)
    hooks = taps.single()
    n = hooks[0].shape[1]
    i = torch.arange(n)
    allowed = i[None, :] < ((i[:, None] // 50 + 1) * 50).clamp(max=n)  # built here, not with the model's helper
    mask = torch.zeros(1, 1, n, n).masked_fill(~allowed, float("-inf"))
    with torch.inference_mode():
        masked = model.apm(data["audio_features"], attention_mask=mask, output_hidden_states=True)
        full = model.apm(data["audio_features"], output_hidden_states=True)
    torch.testing.assert_close(hooks[0], masked.hidden_states[1])
    with torch.inference_mode():
        normed = model.apm.layer_norm(hooks[-1])
    torch.testing.assert_close(normed, masked.hidden_states[-1])
    assert float((hooks[-1] - masked.hidden_states[-1]).abs().max()) > 1e-3  # stored = raw block output
    diff = (full.hidden_states[1][0, :50] - masked.hidden_states[1][0, :50]).abs().max()
    assert float(diff) > 1e-4  # chunk 0 must not see chunk 1
    for k in range(2):
        ref = hooks[k][0].numpy()
        np.testing.assert_allclose(layers[f"encoder.{k:02d}"][1][0], ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())


def test_long_clip_follows_processor_pieces(env: Any) -> None:
    """31.3 s → pieces [0, 30) and [30, 31.3): counts per piece, continuous times, offsets of the 2nd piece."""
    _, layers = run(env, "long", settings={"store_dtype": "float32"})
    clip = env["long"][1]
    _, enc0, tok0 = counts(30 * SR)
    _, enc1, tok1 = counts(len(clip) - 30 * SR)
    assert (enc0, tok0) == (1500, 750)
    _, enc_all, tok_all = counts(len(clip))  # the placeholder is computed from the whole clip
    assert enc0 + enc1 == enc_all and tok0 + tok1 == tok_all
    for name, data in layers.items():
        rate = 50.0 if name.startswith("encoder") else 25.0
        states, times = data[1]
        n0 = enc0 if rate == 50.0 else tok0
        assert states.shape[0] == (enc_all if rate == 50.0 else tok_all)
        np.testing.assert_allclose(np.diff(times[:, 0]), 1 / rate, atol=1e-9)
        assert times[n0, 0] == pytest.approx(30.0) and times[-1, 0] < LONG_S
        assert times[-1, 1] == pytest.approx(min(times[-1, 0] + 1 / rate, LONG_S))
        # The 2nd piece's times are its standalone times shifted by 30 s.
        np.testing.assert_allclose(times[n0:], data[2][1] + 30.0, atol=1e-9)
    # Encoder chunk 0 of piece 2 sees only its own frames: equal to the piece run alone. Its last (partial)
    # chunk also sees the zero-padded frames below the *mel* length, as in the real mask: not equal.
    for k in range(2):
        both, alone = layers[f"encoder.{k:02d}"][1][0][enc0:], layers[f"encoder.{k:02d}"][2][0]
        scale = np.abs(alone).max()
        np.testing.assert_allclose(both[:50], alone[:50], rtol=1e-4, atol=1e-5 * scale)
        assert float(np.abs(both[50:] - alone[50:]).max()) > 1e-2 * scale


def test_long_clip_slots(env: Any) -> None:
    entry, _, proc = load(env)
    inputs, _ = model_inputs(entry, proc, env["long"][1])
    assert inputs["audio_features"].shape[:2] == (2, 80) and inputs["audio_features"].shape[2] == 3000
    assert inputs["audio_feature_lens"][0].tolist() == [3000, counts(len(env["long"][1]) - 30 * SR)[0]]
    sizes = [e - s for s, e in inputs["audio_bounds"][0].tolist()]
    assert len(sizes) == 32 and sum(sizes) == counts(len(env["long"][1]))[2]


def test_raw_last_layer_and_targets_subset(env: Any) -> None:
    _, post = run(env)
    _, raw = run(env, settings={"llm_last_layer": "raw"})
    np.testing.assert_allclose(post["llm.00"][1][0], raw["llm.00"][1][0], atol=1e-5)
    a, b = post["llm.01"][1][0], raw["llm.01"][1][0]
    assert a.shape == b.shape and float(np.abs(a - b).max()) > 1e-2
    np.testing.assert_allclose(np.sqrt((a.astype(np.float64) ** 2).mean(axis=1)), 1.0, rtol=2e-2)  # final RMSNorm
    man, only = run(env, settings={"targets": ["llm"]})
    assert sorted(only) == ["llm.00", "llm.01"] and [m["layer_index"] for m in man["layers"]] == [2, 3]
    for sid in SHORT:
        np.testing.assert_array_equal(only["llm.01"][sid][1], post["llm.01"][sid][1])
    man, enc_only = run(env, settings={"targets": ["encoder"]})
    assert sorted(enc_only) == ["encoder.00", "encoder.01"]


def test_loaded_without_vision_and_tts(env: Any) -> None:
    _, model, proc = load(env)
    assert type(model).__module__.startswith("transformers_modules.") and type(model).__name__ == "MiniCPMO"
    assert not model.config.init_vision and not model.config.init_tts and model.config.init_audio
    assert not hasattr(model, "vpm") and not hasattr(model, "tts")
    assert type(proc).__name__ == "MiniCPMOProcessor" and proc.feature_extractor.feature_size == 80
    assert list((env["root"] / "hf_cache" / "modules").rglob("modeling_minicpmo.py"))


def test_remote_code_refusals(env: Any, tmp_path: Path) -> None:
    reg = yaml.safe_load(Path(env["registry"]).read_text())
    good = reg["models"][TEST_KEY]
    d = tmp_path / "copy"
    shutil.copytree(env["dir"], d)

    def entry_with(**kw: Any) -> Any:
        reg["models"]["x"] = {**good, **kw}
        p = tmp_path / "reg.yaml"
        p.write_text(yaml.safe_dump(reg, sort_keys=False))
        return get_entry(p, "x")

    with pytest.raises(RemoteCodeRefusedError, match="not a pinned"):
        load_model(entry_with(revision=None), d, device="cpu")
    with pytest.raises(RemoteCodeRefusedError, match="registry pins"):
        load_model(entry_with(revision="0" * 40), d, device="cpu")
    (d / "processing_minicpmo.py").write_text((d / "processing_minicpmo.py").read_text() + "\n# changed\n")
    with pytest.raises(RemoteCodeRefusedError, match="modified"):
        load_model(entry_with(), d, device="cpu")


def test_bad_inputs(env: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="30 s pieces"):
        run(env, settings={"window_s": 10})
    audio = tmp_path / "tiny.npz"
    np.savez(audio, s0001=np.full(300, 0.01, dtype=np.float32))  # 300 samples: 2 mel → 1 encoder frame → 0 tokens
    with pytest.raises(ValueError, match="no audio token"):
        extract_activations(key=TEST_KEY, registry=env["registry"], model_dir=env["dir"], audio_npz=audio,
                            out_dir=tmp_path / "out", device="cpu")
    reg = yaml.safe_load(Path(env["registry"]).read_text())
    reg["models"][TEST_KEY]["model_class"] = "MiniCPMV"
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump(reg, sort_keys=False))
    with pytest.raises(TypeError, match="loads MiniCPMO"):
        load_model(get_entry(p, TEST_KEY), env["dir"], device="cpu")
