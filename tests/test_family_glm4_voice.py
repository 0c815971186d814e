"""GLM-4-Voice adapter (``hearlike.models.families.glm4_voice``) on the offline stand-in.

The stand-in (``tests/standins/glm4_voice``) mimics the real module paths and bookkeeping: the GitHub
package ``speech_tokenizer`` (``WhisperVQEncoder`` with pooling ×4 + VQ after its last kept block, a
``utils.py`` that imports torchaudio), the tokenizer companion directory and a tiny remote-code ChatGLM LM.
The registry entry is the real ``glm-4-voice-9b`` entry with only the stand-in's sizes/revision overridden.
"""

from __future__ import annotations

import importlib
import math
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hearlike.models.cache import read_layer  # noqa: E402
from hearlike.models.extract import expected_frames, extract_activations, merge_settings  # noqa: E402
from hearlike.models.loaders import RemoteCodeRefusedError, load_model  # noqa: E402
from hearlike.models.registry import default_registry_path, get_entry, layer_names  # noqa: E402
from hearlike.models.tiny import read_model_marker, speechlike_audio  # noqa: E402

SR = 16000
KEY = "glm-4-voice-9b"
TEST_KEY = "glm-4-voice-standin"
STANDIN = Path(__file__).resolve().parent / "standins" / "glm4_voice"
DURATIONS = {1: 2.0, 2: 4.3, 3: 1.37}
WIN = 2  # window_s for the windowing test: sentence 4 = 2nd 2-s window of sentence 2
D, KEPT, LLM_LAYERS, VQ = 32, 2, 2, 64
# Module paths of the loaded container (family load()): the registry's paths need these prefixes.
ENC_MODULES, LLM_MODULES = "speech_tokenizer.layers", "glm.transformer.encoder.layers"


def _build_module() -> Any:
    spec = importlib.util.spec_from_file_location("glm4_voice_build_standin", STANDIN / "build_standin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _entry(real: dict[str, Any], revision: str) -> dict[str, Any]:
    """The real entry with only what the stand-in cannot honour overridden."""
    e = yaml.safe_load(yaml.safe_dump(real))
    e.update(revision=revision, adapter="implemented", dtype="float32",
             resources={"gpus": 0, "mem_mb": 1000, "runtime_min": 1, "batch_size": 4})
    e["targets"]["encoder"].update(n_layers=KEPT, hidden_size=D, modules=ENC_MODULES)
    e["targets"]["llm"].update(n_layers=LLM_LAYERS, hidden_size=D, modules=LLM_MODULES)
    return e


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("glm4voice")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEARLIKE_HF_CACHE", str(root / "hf_cache"))
    path_before, mods_before = list(sys.path), set(sys.modules)
    reg = yaml.safe_load(default_registry_path().read_text())
    real = reg["models"][KEY]
    model_dir = _build_module().build_glm4_voice_standin(
        root / "model", hub_id=real["hub_id"], code_repo=real["code"]["repo"], code_commit=real["code"]["commit"],
        seed=3, d_model=D, kept_layers=KEPT, llm_layers=LLM_LAYERS, llm_hidden=D, vq_vocab=VQ)
    reg["models"][TEST_KEY] = _entry(real, read_model_marker(model_dir)["revision"])
    reg_path = root / "models.yaml"
    reg_path.write_text(yaml.safe_dump(reg, sort_keys=False))
    clips = {sid: speechlike_audio(d, seed=sid) for sid, d in DURATIONS.items()}
    clips[4] = clips[2][WIN * SR:2 * WIN * SR].copy()
    audio = root / "audio.npz"
    np.savez(audio, **{f"s{sid:04d}": a for sid, a in clips.items()})
    yield types.SimpleNamespace(root=root, registry=reg_path, reg=reg, model_dir=model_dir, audio=audio,
                                clips=clips, results={})
    mp.undo()
    sys.path[:] = path_before  # check_package_code put the stand-in checkout on sys.path
    for name in set(sys.modules) - mods_before:  # stand-in packages share names with other families' code
        if name.split(".")[0] in ("speech_tokenizer", "glm4_voice_build_standin", "transformers_modules"):
            del sys.modules[name]


def run(env: Any, **kw: Any) -> tuple[dict[str, Any], dict[str, dict[int, Any]]]:
    """Extract (memoised per settings) and read every stored layer back."""
    tag = repr(sorted(kw.items()))
    if tag not in env.results:
        out = env.root / f"act-{len(env.results)}"
        man = extract_activations(key=TEST_KEY, registry=env.registry, model_dir=env.model_dir, audio_npz=env.audio,
                                  out_dir=out, device="cpu", **kw)
        layers = {m["name"]: read_layer(out / m["file"]) for m in man["layers"] + man["extra_layers"]}
        env.results[tag] = (man, layers)
    return env.results[tag]


def loaded(env: Any, settings: dict[str, Any] | None = None, entry: Any = None) -> tuple[Any, Any, Any]:
    """``(entry, model, adapter)`` through the production loader."""
    from hearlike.models.extract import adapter_class

    entry = entry or get_entry(env.registry, TEST_KEY)
    model, proc = load_model(entry, env.model_dir, device="cpu")
    adapter = adapter_class(entry.family)(entry, model, proc, device="cpu", dtype=torch.float32,
                                          settings=merge_settings(settings))
    return entry, model, adapter


def close(stored: np.ndarray, direct: np.ndarray) -> None:
    """Stored layers are float16: compare at float16 precision."""
    np.testing.assert_allclose(stored, direct, rtol=2e-3, atol=2e-3 * np.abs(direct).max())


def utils_tokens(env: Any, model: Any, proc: Any, audio: np.ndarray) -> list[int]:
    """Token ids from the stand-in's ``speech_tokenizer.utils.extract_speech_token`` (torchaudio faked)."""
    fake = types.ModuleType("torchaudio")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "torchaudio", fake)
        utils = importlib.import_module("speech_tokenizer.utils")
        mp.setattr(utils, "DEVICE", "cpu")
        toks = utils.extract_speech_token(model.speech_tokenizer, proc.feature_extractor,
                                          [(torch.from_numpy(audio)[None], SR)])[0]
    del sys.modules["speech_tokenizer.utils"]
    return toks


def test_layers_frames_and_times(env: Any) -> None:
    man, layers = run(env)
    entry = get_entry(env.registry, TEST_KEY)
    assert [m["name"] for m in man["layers"]] == layer_names(entry)
    assert len(layers) == KEPT + LLM_LAYERS
    for name, data in layers.items():
        t = entry.targets[name.split(".")[0]]
        assert sorted(data) == [1, 2, 3, 4]
        for sid, (states, times) in data.items():
            n = len(env.clips[sid])
            dur = n / SR
            assert states.shape[1] == D and np.all(np.isfinite(states)) and times.shape == (len(states), 2)
            # Real code: mel mask = samples[::160], 50 Hz mask = mel[::2], tokens = 50 Hz[::4] (causal convs).
            want = math.ceil(math.ceil(math.ceil(n / 160) / 2) / 4) if t.group == "llm" else \
                math.ceil(math.ceil(n / 160) / 2)
            assert len(states) == want == expected_frames(dur, t.rate_hz), (name, sid)
            np.testing.assert_allclose(times[:, 0], np.arange(want) / t.rate_hz, atol=1e-9)
            np.testing.assert_allclose(times[:-1, 1] - times[:-1, 0], 1 / t.rate_hz, atol=1e-9)
            assert times[-1, 1] == pytest.approx(dur)
    assert {r["rate_hz"] for r in man["layers"] if r["group"] == "encoder"} == {50.0}
    assert {r["rate_hz"] for r in man["layers"] if r["group"] == "llm"} == {12.5}


def test_tokens_and_llm_positions_match_model_bookkeeping(env: Any) -> None:
    """Adapter tokens == the package's extract_speech_token; llm layers == a direct LM forward on the demo-style
    prompt at the <|audio_k|> positions; the stored last layer is post-final-norm (hidden_states[-1] is not)."""
    _, model, adapter = loaded(env)
    proc = adapter.processor
    _, layers = run(env)
    _, raw_layers = run(env, settings={"llm_last_layer": "raw"})
    for sid in (2, 3):
        audio = env.clips[sid]
        toks = utils_tokens(env, model, proc, audio)
        assert toks == adapter.speech_tokens([audio]).tokens[0] and len(toks) == math.ceil(len(audio) / 1280)
        assert len(set(toks)) > 1  # the random codebook is not degenerate, so the id check below means something
        text = "<|user|>\n<|begin_of_audio|>" + "".join(f"<|audio_{t}|>" for t in toks) + \
            "<|end_of_audio|><|assistant|>streaming_transcription\n"
        assert adapter.prompt(toks) == text
        ids = proc.tokenizer([text], return_tensors="pt")["input_ids"]
        row = ids[0].tolist()
        assert row[:2] == proc.tokenizer.convert_tokens_to_ids(["[gMASK]", "<sop>"])
        begin = row.index(proc.tokenizer.convert_tokens_to_ids("<|begin_of_audio|>"))
        pos = np.arange(begin + 1, begin + 1 + len(toks))
        assert row[pos[-1] + 1] == proc.tokenizer.convert_tokens_to_ids("<|end_of_audio|>")
        assert [row[p] - proc.tokenizer.convert_tokens_to_ids("<|audio_0|>") for p in pos] == toks
        np.testing.assert_array_equal(adapter.audio_positions(ids[0], toks), pos)
        with torch.inference_mode():
            out = model.glm(input_ids=ids, output_hidden_states=True, use_cache=False)
        hs = out.hidden_states
        assert len(hs) == LLM_LAYERS + 1
        close(layers["llm.00"][sid][0], hs[1][0, pos].numpy())
        with torch.inference_mode():
            normed = model.glm.transformer.encoder.final_layernorm(hs[-1])[0, pos].numpy()
        close(layers["llm.01"][sid][0], normed)
        close(raw_layers["llm.01"][sid][0], hs[-1][0, pos].numpy())
        assert np.abs(normed - hs[-1][0, pos].numpy()).max() > 1e-2  # post-norm and raw really differ
        np.testing.assert_array_equal(raw_layers["llm.00"][sid][0], layers["llm.00"][sid][0])


def test_encoder_hooks_are_the_50hz_blocks_feeding_the_quantizer(env: Any) -> None:
    """Hooks == the encoder's own hidden_states for blocks before the last; the last hooked block is the 50 Hz
    state that is pooled ×4 and quantized (its pooled nearest codes == quantized_token_ids); the encoder's
    hidden_states[-1] is the 12.5 Hz post-VQ state, not a block output."""
    from hearlike.models.extract import LayerTaps

    _, model, adapter = loaded(env)
    vq = model.speech_tokenizer
    assert len(vq.layers) == KEPT < vq.config.encoder_layers  # quantize_encoder_only keeps 16 of 32 (here 2/4)
    fe = adapter.processor.feature_extractor
    feats = fe([env.clips[3]], sampling_rate=SR, return_attention_mask=True, return_tensors="pt",
               padding="longest", pad_to_multiple_of=1280)
    with torch.inference_mode(), LayerTaps(list(vq.layers)) as taps:
        out = vq(feats["input_features"], attention_mask=feats["attention_mask"], output_hidden_states=True)
    hooks = taps.single()
    t50 = feats["input_features"].shape[-1] // 2
    assert [h.shape[1] for h in hooks] == [t50] * KEPT
    for i in range(KEPT - 1):
        torch.testing.assert_close(hooks[i], out.hidden_states[i + 1])
    assert out.hidden_states[-1].shape[1] == t50 // 4
    pooled = torch.nn.functional.avg_pool1d(hooks[-1].transpose(1, 2), 4).transpose(1, 2)
    code = vq.codebook.weight
    dist = (pooled[0, :, None, :] - code[None]).pow(2).sum(-1)
    torch.testing.assert_close(dist.argmin(-1), out.quantized_token_ids[0])
    # The stored encoder layers are these hooks at the valid frames.
    _, layers = run(env)
    n = math.ceil(len(env.clips[3]) / 320)
    for i in range(KEPT):
        close(layers[f"encoder.{i:02d}"][3][0], hooks[i][0, :n].numpy())


def test_windows_offsets_and_tokens(env: Any) -> None:
    """window_s 2: sentence 2 (4.3 s) = windows 2 + 2 + 0.3 s tokenized in one padded batch (as the package
    does for 30 s segments); its 2nd window equals sentence 4 alone; tokens are concatenated per window."""
    _, layers = run(env, settings={"window_s": WIN})
    for name in [n for n in layers if n.startswith("encoder.")]:
        s2, t2 = layers[name][2]
        s4, t4 = layers[name][4]
        assert len(s2) == math.ceil(4.3 * 50) and len(s4) == WIN * 50
        seg = slice(WIN * 50, 2 * WIN * 50)
        np.testing.assert_allclose(t2[seg], t4 + WIN, atol=1e-9)
        close(s2[seg], s4)
    s2, t2 = layers["llm.00"][2]
    _, t4 = layers["llm.00"][4]
    assert len(s2) == 25 + 25 + math.ceil(0.3 * SR / 1280)
    np.testing.assert_allclose(t2[25:50], t4 + WIN, atol=1e-9)
    np.testing.assert_allclose(np.diff(t2[:, 0]), 1 / 12.5, atol=1e-9)
    _, _, adapter = loaded(env, {"window_s": WIN})
    wins = [env.clips[2][i:i + WIN * SR] for i in range(0, len(env.clips[2]), WIN * SR)]
    st = adapter.speech_tokens(wins)
    assert st.n_tokens == [25, 25, 4] and st.n_frames == [100, 100, 15]
    assert st.tokens[1] == adapter.speech_tokens([env.clips[4]]).tokens[0]
    # Unwindowed (30 s cap) results differ for the LM (one context) but agree in counts.
    _, full = run(env)
    assert len(full["llm.00"][2][0]) == len(s2)


def test_batching_and_settings(env: Any) -> None:
    _, layers = run(env)
    _, single = run(env, batch_size=1)
    for name in layers:
        for sid in layers[name]:
            np.testing.assert_array_equal(layers[name][sid][1], single[name][sid][1])
            np.testing.assert_allclose(layers[name][sid][0], single[name][sid][0], rtol=1e-5, atol=1e-6)
    man_e, emb = run(env, settings={"store_embedding_layer": True})
    assert [m["name"] for m in man_e["extra_layers"]] == ["encoder.emb", "llm.emb"]
    _, model, adapter = loaded(env)
    toks = adapter.speech_tokens([env.clips[1]]).tokens[0]
    ids = adapter.processor.tokenizer([adapter.prompt(toks)], return_tensors="pt")["input_ids"][0]
    pos = adapter.audio_positions(ids, toks)
    with torch.inference_mode():
        direct = model.glm.transformer.embedding.word_embeddings(ids[pos]).numpy()
    close(emb["llm.emb"][1][0], direct)
    assert emb["encoder.emb"][1][0].shape == (100, D)
    man_l, only_llm = run(env, settings={"targets": ["llm"]})
    assert sorted(only_llm) == ["llm.00", "llm.01"] and set(man_l["frames"]) == {"llm"}
    man_enc, only_enc = run(env, settings={"targets": ["encoder"]})
    assert sorted(only_enc) == ["encoder.00", "encoder.01"] and man_enc["llm_last_layer"] is None
    np.testing.assert_array_equal(only_enc["encoder.01"][2][0], layers["encoder.01"][2][0])


def _copy_model(env: Any, name: str) -> Path:
    d = env.root / name
    if not d.exists():
        shutil.copytree(env.model_dir, d, ignore=shutil.ignore_patterns("__pycache__"))
    return d


def test_refusals(env: Any) -> None:
    base = env.reg["models"][TEST_KEY]
    reg = yaml.safe_load(env.registry.read_text())
    reg["models"]["unpinned"] = {**base, "revision": None}
    reg["models"]["other-commit"] = {**base, "code": {**base["code"], "commit": "0" * 40}}
    reg["models"]["other-revision"] = {**base, "revision": "1" * 40}
    path = env.root / "refusal.yaml"
    path.write_text(yaml.safe_dump(reg, sort_keys=False))
    for key, msg in (("unpinned", "not a pinned"), ("other-commit", "registry pins"),
                     ("other-revision", "the registry pins")):
        with pytest.raises(RemoteCodeRefusedError, match=msg):
            load_model(get_entry(path, key), env.model_dir, device="cpu")
    entry = get_entry(env.registry, TEST_KEY)
    for rel in ("hearlike_code/speech_tokenizer/modeling_whisper.py", "modeling_chatglm.py"):
        d = _copy_model(env, "tampered-" + rel.split("/")[-1].split(".")[0])
        with (d / rel).open("a") as f:
            f.write("\n# changed\n")
        with pytest.raises(RemoteCodeRefusedError, match="modified"):
            load_model(entry, d, device="cpu")
    d = _copy_model(env, "no-tokenizer")
    shutil.rmtree(d / "companions")
    with pytest.raises(FileNotFoundError, match="glm-4-voice-tokenizer"):
        load_model(entry, d, device="cpu")


def test_bad_inputs_fail_clearly(env: Any) -> None:
    _, model, adapter = loaded(env)
    raw = {**env.reg["models"][TEST_KEY]}
    reg = {"version": 1, "models": {
        "no-tokens": {**raw, "audio_placeholder": "<|begin_of_audio|><|end_of_audio|>"},
        "wrong-rate": {**raw, "targets": {**raw["targets"], "encoder": {**raw["targets"]["encoder"], "rate_hz": 25}}},
        "wrong-count": {**raw, "targets": {**raw["targets"], "encoder": {**raw["targets"]["encoder"], "n_layers": 4}}},
    }}
    path = env.root / "bad.yaml"
    path.write_text(yaml.safe_dump(reg, sort_keys=False))
    cls = type(adapter)
    for key, msg in (("no-tokens", "tokens"), ("wrong-rate", "50.0 Hz"), ("wrong-count", "has 2 layers")):
        with pytest.raises(ValueError, match=msg):
            cls(get_entry(path, key), model, adapter.processor, device="cpu", dtype=torch.float32,
                settings=merge_settings(None))
    # A tokenizer that would split the prompt differently is caught by the audio-id check.
    with pytest.raises(RuntimeError, match="audio tokens"):
        adapter.audio_positions(torch.tensor([1, 2, 3]), [5])
    # Blocks after the pooling position (a full-encoder config) would run at 12.5 Hz: refused, not mislabelled.
    model.speech_tokenizer.config.pooling_position = 1
    with pytest.raises(ValueError, match="lower rate"):
        adapter.run([adapter_clip(env, 3)])


def adapter_clip(env: Any, sid: int) -> Any:
    from hearlike.models.extract import Clip

    return Clip(sid, env.clips[sid])


def test_adapter_module_imports_without_torch_side_effects() -> None:
    """The family module itself imports neither the package's utils (torchaudio) nor transformers at import."""
    import subprocess

    code = ("import sys, hearlike.models.families.glm4_voice as m; "
            "bad = [k for k in ('transformers', 'torch', 'torchaudio', 'speech_tokenizer') if k in sys.modules]; "
            "print(bad); assert not bad, bad; assert m.ADAPTER.__name__ == 'GLM4VoiceAdapter'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
