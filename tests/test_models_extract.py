"""Offline extraction tests on tiny random models of every native architecture plus the remote-code path.

Each tiny model is built once per module, saved, reloaded through the production loader
(``local_files_only``) and extracted with ``extract_activations`` on synthetic speech-like audio.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hearlike.models.cache import load_manifest, read_layer  # noqa: E402
from hearlike.models.extract import extract_activations  # noqa: E402
from hearlike.models.loaders import RemoteCodeRefusedError, load_model  # noqa: E402
from hearlike.models.registry import default_registry_path, get_entry, layer_names  # noqa: E402
from hearlike.models.tiny import build_tiny, read_model_marker, speechlike_audio, tiny_entry  # noqa: E402

SR = 16000
# Sentence 4 is the 2nd 2-s window of sentence 2, to check window offsets (chunk_length_s=2 below).
DURATIONS = {1: 2.0, 2: 4.3, 3: 1.37}
CHUNK = 2
ARCH_SETTINGS: dict[str, dict[str, Any]] = {
    "whisper": {"chunk_length_s": CHUNK},
    "wavlm": {},
    "hubert": {"stable_layer_norm": False},   # base-style: group norm, no attention mask
    "wav2vec2": {},
    "qwen2_audio": {"chunk_length_s": CHUNK},
    "audioflamingo3": {"chunk_length_s": CHUNK},
    "granite_speech": {},
    "uvlike": {},
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEARLIKE_HF_CACHE", str(root / "hf_cache"))
    reg = yaml.safe_load(default_registry_path().read_text())
    dirs = {}
    for arch, kw in ARCH_SETTINGS.items():
        d = build_tiny(arch=arch, out_dir=root / arch, seed=1, **kw)
        rev = read_model_marker(d)["revision"] if arch == "uvlike" else None
        reg["models"][f"tiny-{arch}"] = tiny_entry(arch=arch, revision=rev, seed=1, **kw)
        dirs[arch] = d
    reg_path = root / "models.yaml"
    reg_path.write_text(yaml.safe_dump(reg, sort_keys=False))
    clips = {sid: speechlike_audio(d, seed=sid) for sid, d in DURATIONS.items()}
    clips[4] = clips[2][CHUNK * SR:2 * CHUNK * SR].copy()
    audio = root / "audio.npz"
    np.savez(audio, **{f"s{sid:04d}": a for sid, a in clips.items()})
    yield {"root": root, "registry": reg_path, "dirs": dirs, "audio": audio, "clips": clips, "results": {}}
    mp.undo()


def run(env: dict[str, Any], arch: str, **kw: Any) -> tuple[dict[str, Any], dict[str, dict[int, Any]]]:
    """Extract (memoised per arch + settings) and read every layer back."""
    tag = (arch, repr(sorted(kw.items())))
    if tag not in env["results"]:
        out = env["root"] / f"act-{arch}-{len(env['results'])}"
        man = extract_activations(key=f"tiny-{arch}", registry=env["registry"], model_dir=env["dirs"][arch],
                                  audio_npz=env["audio"], out_dir=out, device="cpu", **kw)
        layers = {lay["name"]: read_layer(out / lay["file"]) for lay in man["layers"]}
        env["results"][tag] = ({**man, "_out": out}, layers)
    return env["results"][tag]


def load(env: dict[str, Any], arch: str) -> tuple[Any, Any, Any]:
    entry = get_entry(env["registry"], f"tiny-{arch}")
    model, proc = load_model(entry, env["dirs"][arch], device="cpu")
    return entry, model, proc


ALL = list(ARCH_SETTINGS)
LLMS = ["qwen2_audio", "audioflamingo3", "granite_speech", "uvlike"]


@pytest.mark.parametrize("arch", ALL)
def test_layers_frames_and_times(env: dict[str, Any], arch: str) -> None:
    man, layers = run(env, arch)
    entry = get_entry(env["registry"], f"tiny-{arch}")
    assert [lay["name"] for lay in man["layers"]] == layer_names(entry)
    assert len(layers) == 2 + (2 if arch in LLMS else 0)
    for name, data in layers.items():
        group = name.split(".")[0]
        t = entry.targets[group]
        assert sorted(data) == [1, 2, 3, 4]
        for sid, (states, times) in data.items():
            dur = len(env["clips"][sid]) / SR
            assert states.dtype == np.float32 and states.shape[1] == t.hidden_size
            assert np.all(np.isfinite(states))
            assert times.shape == (states.shape[0], 2)
            # Frame count follows duration × the model's true rate (±1 for edge/ceil rounding).
            assert abs(states.shape[0] - dur * t.rate_hz) <= 1.0, (name, sid, states.shape[0], dur * t.rate_hz)
            hop = 1.0 / t.rate_hz
            np.testing.assert_allclose(np.diff(times[:, 0]), hop, atol=1e-9)  # continuous across windows
            assert times[0, 0] == 0.0 and times[-1, 0] < dur and times[:, 1].max() <= dur + 1e-12
            np.testing.assert_allclose(times[:-1, 1] - times[:-1, 0], t.frame_length, atol=1e-9)


@pytest.mark.parametrize("arch", ["whisper", "qwen2_audio", "audioflamingo3"])
def test_window_offsets(env: dict[str, Any], arch: str) -> None:
    """Sentence 2 (4.3 s) is split into 2-s windows; its 2nd window equals sentence 4 run on its own."""
    _, layers = run(env, arch)
    for name in [n for n in layers if n.startswith("encoder.")]:
        s2, t2 = layers[name][2]
        s4, t4 = layers[name][4]
        assert s2.shape[0] == math.ceil(4.3 * 50) and s4.shape[0] == CHUNK * 50
        seg = slice(CHUNK * 50, 2 * CHUNK * 50)
        np.testing.assert_allclose(t2[seg], t4 + CHUNK, atol=1e-9)
        scale = np.abs(s4).max()
        np.testing.assert_allclose(s2[seg], s4, atol=2e-3 * scale, rtol=2e-3)


@pytest.mark.parametrize("arch", ["whisper", "wavlm", "qwen2_audio", "audioflamingo3"])
def test_batching_matches_single(env: dict[str, Any], arch: str) -> None:
    _, batched = run(env, arch)
    _, single = run(env, arch, batch_size=1)
    for name in batched:
        for sid in batched[name]:
            a, ta = batched[name][sid]
            b, tb = single[name][sid]
            np.testing.assert_array_equal(ta, tb)
            np.testing.assert_allclose(a, b, atol=2e-3 * np.abs(b).max(), rtol=2e-3)


def _hooked(model: Any, path: str, fn: Any) -> list[Any]:
    from hearlike.models.extract import LayerTaps, resolve_module

    with torch.inference_mode(), LayerTaps(list(resolve_module(model, path))) as taps:
        out = fn()
    return [*taps.single(), out]


def test_qwen2_audio_hooks_equal_masked_direct_call(env: dict[str, Any]) -> None:
    """Pitfalls 1–3: hooks == direct tower call with the rebuilt padding mask; unmasked call differs;
    the tower's own hidden_states[-1] is the pooled 25 Hz output."""
    from transformers.masking_utils import create_bidirectional_mask

    entry, model, proc = load(env, "qwen2_audio")
    audio = env["clips"][3]  # 1.37 s in a 2-s window: padding present
    inputs = proc(text=["<|audio_bos|><|AUDIO|><|audio_eos|>"], audio=[audio], sampling_rate=SR, return_tensors="pt")
    *hooks, _ = _hooked(model, entry.targets["encoder"].modules,
                        lambda: model(**inputs, output_hidden_states=True))
    tower = model.model.audio_tower
    enc_len, pooled_len = tower._get_feat_extract_output_lengths(inputs["feature_attention_mask"].sum(-1))
    n = int(enc_len)
    max_len = hooks[0].shape[1]
    mask2d = (torch.arange(max_len)[None, :] < enc_len[:, None]).long()
    mask = create_bidirectional_mask(config=tower.config, inputs_embeds=torch.zeros(1, max_len, 1),
                                     attention_mask=mask2d)
    with torch.inference_mode():
        masked = tower(inputs["input_features"], attention_mask=mask, output_hidden_states=True)
        unmasked = tower(inputs["input_features"], output_hidden_states=True)
    for i in range(len(hooks) - 1):  # hidden_states[i + 1] is block i's output except the last entry
        torch.testing.assert_close(hooks[i][0, :n], masked.hidden_states[i + 1][0, :n])
    assert masked.hidden_states[-1].shape[1] == max_len // 2  # pooled + LayerNormed, not block L
    diff = (unmasked.hidden_states[2][0, :n] - masked.hidden_states[2][0, :n]).abs().max()
    assert float(diff) > 1e-3  # without the mask the valid frames change
    # The stored layers are the hooked ones (raw block outputs).
    _, layers = run(env, "qwen2_audio")
    s3 = layers["encoder.01"][3][0]
    np.testing.assert_allclose(s3, hooks[1][0, :n].float().numpy(), atol=5e-3 * np.abs(s3).max())
    assert int(pooled_len) == layers["llm.00"][3][0].shape[0]


def test_af3_hooks_equal_get_audio_features(env: dict[str, Any]) -> None:
    entry, model, proc = load(env, "audioflamingo3")
    inputs = proc(text=["<sound>"], audio=[env["clips"][1]], sampling_rate=SR, return_tensors="pt")
    *hooks, _ = _hooked(model, entry.targets["encoder"].modules, lambda: model(**inputs))
    with torch.inference_mode():
        direct = model.get_audio_features(inputs["input_features"], inputs["input_features_mask"],
                                          output_hidden_states=True)
    for i in range(len(hooks) - 1):
        torch.testing.assert_close(hooks[i], direct.hidden_states[i + 1])


def test_granite_hooks_equal_encoder_hidden_states(env: dict[str, Any]) -> None:
    entry, model, proc = load(env, "granite_speech")
    inputs = proc(text=["<|audio|>"], audio=torch.from_numpy(env["clips"][1]), return_tensors="pt")
    *hooks, _ = _hooked(model, entry.targets["encoder"].modules,
                        lambda: model(**{k: v for k, v in inputs.items() if k != "audio_embed_sizes"}))
    with torch.inference_mode():
        direct = model.model.encoder(inputs["input_features"], output_hidden_states=True)
    # hidden_states = (input_linear output, block 1, …, block L); the hooks are the block outputs.
    assert len(direct.hidden_states) == len(hooks) + 1
    for h, d in zip(hooks, direct.hidden_states[1:], strict=True):
        torch.testing.assert_close(h, d)


@pytest.mark.parametrize("arch", ["whisper", "wavlm"])
def test_speech_encoder_hooks_vs_hidden_states(env: dict[str, Any], arch: str) -> None:
    """Hooks give the raw block outputs of all L layers; the encoder's final LayerNorm is never applied.

    transformers 5.24: Whisper's hidden_states[-1] is LN(block L); wav2vec2-family (stable LN) hidden_states
    are the raw blocks and only last_hidden_state carries the final LN.
    """
    entry, model, proc = load(env, arch)
    fe = proc(env["clips"][1], sampling_rate=SR, return_tensors="pt")
    key = "input_features" if arch == "whisper" else "input_values"
    enc = model.get_encoder() if arch == "whisper" else model
    *hooks, out = _hooked(model, entry.targets["encoder"].modules,
                          lambda: enc(fe[key], output_hidden_states=True))
    hs = out.hidden_states
    assert len(hs) == len(hooks) + 1
    n_raw = len(hooks) - 1 if arch == "whisper" else len(hooks)
    for i in range(n_raw):
        torch.testing.assert_close(hooks[i], hs[i + 1])
    with torch.inference_mode():
        normed = model.encoder.layer_norm(hooks[-1])
    torch.testing.assert_close(normed, out.last_hidden_state)
    assert float((hooks[-1] - out.last_hidden_state).abs().max()) > 1e-3
    _, layers = run(env, arch)
    stored = layers[f"encoder.{len(hooks) - 1:02d}"][1][0]
    ref = hooks[-1][0, :stored.shape[0]].float().numpy()
    np.testing.assert_allclose(stored, ref, atol=5e-3 * np.abs(ref).max())


@pytest.mark.parametrize("arch", LLMS)
def test_llm_span_and_last_layer(env: dict[str, Any], arch: str) -> None:
    """LLM layers are hidden_states[1:] at the audio positions; post_norm vs raw differ only in the last."""
    _, post = run(env, arch)
    _, raw = run(env, arch, settings={"llm_last_layer": "raw"})
    llm = sorted(n for n in post if n.startswith("llm."))
    for name in llm[:-1]:
        for sid in post[name]:
            np.testing.assert_allclose(post[name][sid][0], raw[name][sid][0], atol=1e-3 * np.abs(raw[name][sid][0]).max())
    last = llm[-1]
    a, b = post[last][1][0], raw[last][1][0]
    assert a.shape == b.shape and float(np.abs(a - b).max()) > 1e-2
    # Post-norm rows have RMS ≈ norm weight (1 at init): the final RMSNorm was applied.
    rms = np.sqrt((a.astype(np.float64) ** 2).mean(axis=1))
    np.testing.assert_allclose(rms, 1.0, rtol=2e-2)


@pytest.mark.parametrize("arch", ["qwen2_audio", "audioflamingo3", "granite_speech"])
def test_audio_token_positions(env: dict[str, Any], arch: str) -> None:
    """The audio span in input_ids is contiguous, framed by the prompt text, and as long as the processor says."""
    from hearlike.models.extract import audio_token_positions

    entry, model, proc = load(env, arch)
    audio = env["clips"][1]
    text = entry.prompt.replace("{audio}", entry.audio_placeholder.replace("{n}", "1"))
    if arch == "granite_speech":
        inputs = proc(text=[text], audio=torch.from_numpy(audio), return_tensors="pt")
        # 2 s → 201 mel frames → 100 stacked encoder frames → ceil(100 / 15) windows × 3 queries
        n_expected = math.ceil(((len(audio) // 160 + 1) // 2) / 15) * 3
    else:
        inputs = proc(text=[text], audio=[audio], sampling_rate=SR, return_tensors="pt")
        mask = inputs["feature_attention_mask" if arch == "qwen2_audio" else "input_features_mask"]
        n_expected = ((int(mask.sum()) - 1) // 2 + 1 - 2) // 2 + 1
    tid = model.config.audio_token_id
    pos = audio_token_positions(inputs["input_ids"][0], tid)
    assert len(pos) == n_expected and np.all(np.diff(pos) == 1)
    tok = proc.tokenizer
    audio_tok = tok.convert_ids_to_tokens(tid)
    ph_pre, _, ph_post = entry.audio_placeholder.partition(audio_tok)
    head, _, tail = text.partition(entry.audio_placeholder)
    ids = inputs["input_ids"][0].tolist()
    if arch == "qwen2_audio":
        assert ids[pos[0] - 1] == tok.convert_tokens_to_ids("<|audio_bos|>")
        assert ids[pos[-1] + 1] == tok.convert_tokens_to_ids("<|audio_eos|>")
    assert tok.decode(ids[:pos[0]]) == head + ph_pre
    assert tok.decode(ids[pos[-1] + 1:]) == ph_post + tail


def test_uvlike_remote_code_span_and_cache_dir(env: dict[str, Any]) -> None:
    """The remote-code model's processor span equals the audio-token positions; code is cached in the project."""
    from hearlike.models.extract import audio_token_positions

    entry, model, proc = load(env, "uvlike")
    assert type(model).__module__.startswith("transformers_modules.")
    text = entry.prompt.replace("{audio}", "<|audio|>")
    inputs = proc(text=text, audio=env["clips"][1], sampling_rate=SR)
    pos = audio_token_positions(inputs["input_ids"][0], model.config.audio_token_id)
    s, n = int(inputs["audio_token_start_idx"][0]), int(inputs["audio_token_len"][0])
    assert list(pos) == list(range(s, s + n)) and n == math.ceil(100 / 8)
    cached = list((env["root"] / "hf_cache" / "modules").rglob("modeling_uvlike.py"))
    assert cached, "dynamic module was not written to HEARLIKE_HF_CACHE"


def test_remote_code_refusals(env: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    reg = yaml.safe_load(Path(env["registry"]).read_text())
    good = reg["models"]["tiny-uvlike"]
    d = tmp_path / "uv"
    shutil.copytree(env["dirs"]["uvlike"], d)

    def entry_with(**kw: Any) -> Any:
        reg["models"]["tiny-uvlike-x"] = {**good, **kw}
        p = tmp_path / "reg.yaml"
        p.write_text(yaml.safe_dump(reg, sort_keys=False))
        return get_entry(p, "tiny-uvlike-x")

    with pytest.raises(RemoteCodeRefusedError, match="not a pinned"):
        load_model(entry_with(revision=None), d, device="cpu")
    with pytest.raises(RemoteCodeRefusedError, match="registry pins"):
        load_model(entry_with(revision="0" * 40), d, device="cpu")
    (d / "modeling_uvlike.py").write_text((d / "modeling_uvlike.py").read_text() + "\n# changed\n")
    with pytest.raises(RemoteCodeRefusedError, match="modified"):
        load_model(entry_with(), d, device="cpu")
    (d / "extra.py").write_text("x = 1\n")
    (d / "hearlike_model.json").unlink()
    with pytest.raises(RemoteCodeRefusedError, match="missing"):
        load_model(entry_with(), d, device="cpu")


def test_missing_model_message(env: dict[str, Any], tmp_path: Path) -> None:
    from hearlike.models.loaders import ModelNotAvailableError

    with pytest.raises(ModelNotAvailableError, match=r"python -m hearlike\.models\.download qwen2-audio-7b --dest"):
        extract_activations(key="qwen2-audio-7b", registry=env["registry"], model_dir=tmp_path / "nope",
                            audio_npz=env["audio"], out_dir=tmp_path / "out")


def test_targets_subset_and_manifest(env: dict[str, Any]) -> None:
    man, layers = run(env, "qwen2_audio", settings={"targets": ["llm"]})
    assert sorted(layers) == ["llm.00", "llm.01"]
    full, _ = run(env, "qwen2_audio")
    # layer_index keeps the position in the full stack (encoder first).
    assert [lay["layer_index"] for lay in man["layers"]] == [2, 3]
    assert man["frames"] == {"llm": {"1": 50, "2": 107, "3": 34, "4": 50}}
    assert full["key_sha256"] != man["key_sha256"] and load_manifest(man["_out"])["key"]["settings"]["targets"] == ["llm"]


@pytest.mark.parametrize("arch", ["wavlm", "qwen2_audio", "uvlike"])
def test_embedding_layer_option(env: dict[str, Any], arch: str) -> None:
    """store_embedding_layer adds '<group>.emb' (input of block 1) outside the analysed layer list."""
    man, layers = run(env, arch, settings={"store_embedding_layer": True})
    _, plain = run(env, arch)
    entry = get_entry(env["registry"], f"tiny-{arch}")
    assert [lay["name"] for lay in man["layers"]] == layer_names(entry)
    assert [lay["name"] for lay in man["extra_layers"]] == [f"{g}.emb" for g in entry.targets]
    for g in entry.targets:
        emb = read_layer(man["_out"] / f"{g}.emb.safetensors")
        for sid, (states, times) in emb.items():
            first, ftimes = plain[f"{g}.00"][sid]
            np.testing.assert_array_equal(times, ftimes)
            assert states.shape == first.shape and float(np.abs(states - first).max()) > 1e-3
    for name in plain:
        np.testing.assert_allclose(layers[name][1][0], plain[name][1][0], atol=1e-3 * np.abs(plain[name][1][0]).max())


def test_rerun_with_fewer_targets_removes_stale_files(env: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    full, _ = run(env, "qwen2_audio")
    out = tmp_path / "act"
    shutil.copytree(full["_out"], out)
    man = extract_activations(key="tiny-qwen2_audio", registry=env["registry"], model_dir=env["dirs"]["qwen2_audio"],
                              audio_npz=env["audio"], out_dir=out, device="cpu", settings={"targets": ["llm"]})
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["llm.00.safetensors", "llm.01.safetensors"]
    assert man["key_sha256"] != full["key_sha256"]
