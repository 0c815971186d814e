"""Baichuan-Audio adapter on an offline stand-in of its remote code (tests/standins/baichuan_audio).

The stand-in keeps the real interface and bookkeeping (file-reference prompt, processor windowing and
length formulas, packed encoder blocks, ×4 bridge + RVQ codes summed into the audio pad positions) with
tiny random weights; its audio windows are 2 s (``max_audio_seconds``) instead of 30 s to exercise windowing.
"""

from __future__ import annotations

import importlib.util
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
pytest.importorskip("soundfile")

from hearlike.models.cache import read_layer  # noqa: E402
from hearlike.models.extract import extract_activations, merge_settings  # noqa: E402
from hearlike.models.families.baichuan_audio import BaichuanAudioAdapter, window_bounds  # noqa: E402
from hearlike.models.loaders import RemoteCodeRefusedError, load_model  # noqa: E402
from hearlike.models.registry import default_registry_path, get_entry, layer_names  # noqa: E402
from hearlike.models.tiny import read_model_marker, speechlike_audio  # noqa: E402

SR = 16000
ROOT = Path(__file__).resolve().parent
MAX_S = 2  # stand-in audio_config.max_audio_seconds
# 4: the 2nd window of 2; 5: 2nd window (0.05 s → 3 encoder frames → 0 tokens) skipped by the processor;
# 6: 2nd window of 0.02 s (< n_fft) dropped by split_with_overlap.
DURATIONS = {1: 2.0, 2: 4.3, 3: 1.37, 5: 2.05, 6: 2.02}
PH = "<audio_start_baichuan>{audio_json}<audio_end_baichuan>"
ENC_PATH = "audio_tokenizer.audio_model.layers"
KEYS = {"base": "baichuan-audio-base", "instruct": "baichuan-audio-instruct"}


def _builder() -> Any:
    spec = importlib.util.spec_from_file_location("hearlike_test_baichuan_build",
                                                  ROOT / "standins" / "baichuan_audio" / "build_standin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def expected_counts(n: int) -> tuple[list[int], list[int], list[int]]:
    """Per kept window: encoder frames starting inside the audio, audio tokens, window start (samples)."""
    enc_keep, toks, starts = [], [], []
    for s in range(0, n, MAX_S * SR):
        m = min(MAX_S * SR, n - s)
        mel = min(MAX_S * SR // 160, m // 160 + 1)
        enc = (mel - 1) // 2 + 1
        if m < 400 or enc // 4 == 0:
            continue
        enc_keep.append(sum(1 for k in range(enc) if k * 0.02 < m / SR - 1e-9))
        toks.append(enc // 4)
        starts.append(s)
    return enc_keep, toks, starts


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("baichuan")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEARLIKE_HF_CACHE", str(root / "hf_cache"))
    mods_before = set(sys.modules)
    path_before = list(sys.path)
    b = _builder()
    reg = yaml.safe_load(default_registry_path().read_text())
    dirs = {}
    for tag, key in KEYS.items():
        real = reg["models"][key]
        d = b.build_standin(root / tag, hub_id=real["hub_id"], seed=3)
        dirs[tag] = d
        e = json.loads(json.dumps(real))
        e.update(revision=read_model_marker(d)["revision"], adapter="implemented", dtype="float32",
                 audio_placeholder=PH,
                 resources={"gpus": 0, "mem_mb": 2000, "runtime_min": 1, "batch_size": 4})
        if tag == "instruct":
            e["prompt"] = "<C_Q>{audio}<C_A>"  # role tokens of web_demo/constants.py
        e["targets"]["encoder"].update(n_layers=2, hidden_size=32, modules=ENC_PATH)
        e["targets"]["llm"].update(n_layers=2, hidden_size=64)
        reg["models"][key] = e
    reg_path = root / "models.yaml"
    reg_path.write_text(yaml.safe_dump(reg, sort_keys=False))
    clips = {sid: speechlike_audio(dur, seed=sid) for sid, dur in DURATIONS.items()}
    clips[4] = clips[2][MAX_S * SR:2 * MAX_S * SR].copy()
    audio = root / "audio.npz"
    np.savez(audio, **{f"s{sid:04d}": a for sid, a in clips.items()})
    yield {"root": root, "registry": reg_path, "dirs": dirs, "audio": audio, "clips": clips, "results": {},
           "reg": reg}
    mp.undo()
    b.unload_package()
    for name in set(sys.modules) - mods_before:  # dynamic modules of the stand-in (names other families may reuse)
        if name.startswith(("transformers_modules", "hearlike_test_baichuan", "baichuan_omni_standin")):
            del sys.modules[name]
    sys.path[:] = path_before


def run(env: Any, tag: str = "base", **kw: Any) -> tuple[dict[str, Any], dict[str, dict[int, Any]]]:
    """Extract (memoised per model + settings) and read every layer back, extra layers included."""
    key = (tag, repr(sorted(kw.items())))
    if key not in env["results"]:
        out = env["root"] / f"act-{tag}-{len(env['results'])}"
        man = extract_activations(key=KEYS[tag], registry=env["registry"], model_dir=env["dirs"][tag],
                                  audio_npz=env["audio"], out_dir=out, device="cpu", **kw)
        layers = {m["name"]: read_layer(out / m["file"]) for m in man["layers"] + man["extra_layers"]}
        env["results"][key] = (man, layers)
    return env["results"][key]


def load(env: Any, tag: str = "base") -> tuple[Any, Any, Any]:
    entry = get_entry(env["registry"], KEYS[tag])
    model, proc = load_model(entry, env["dirs"][tag], device="cpu")
    return entry, model, proc


def process(env: Any, proc: Any, entry: Any, audio: np.ndarray) -> Any:
    import soundfile as sf

    wav = env["root"] / "probe.wav"
    sf.write(str(wav), audio, SR, subtype="FLOAT")
    text = entry.prompt.replace("{audio}", entry.audio_placeholder.replace("{audio_json}", json.dumps({"path": str(wav)})))
    return proc([text])


def close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to the float16 storage of the activation cache."""
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=2e-3 * float(np.abs(b).max()), rtol=2e-3)


def test_layers_frames_and_times(env: Any) -> None:
    man, layers = run(env)
    entry = get_entry(env["registry"], KEYS["base"])
    assert [m["name"] for m in man["layers"]] == layer_names(entry) == [
        "encoder.00", "encoder.01", "llm.00", "llm.01"]
    assert man["run"]["batch_size"] == 1  # not exact under padding: one clip per forward
    for name, data in layers.items():
        t = entry.targets[name.split(".")[0]]
        assert sorted(data) == [1, 2, 3, 4, 5, 6]
        for sid, (states, times) in data.items():
            n = len(env["clips"][sid])
            dur = n / SR
            enc, tok, _ = expected_counts(n)
            want = sum(enc) if t.group == "encoder" else sum(tok)
            assert states.shape == (want, t.hidden_size), (name, sid)
            assert np.all(np.isfinite(states)) and times.shape == (want, 2)
            np.testing.assert_allclose(np.diff(times[:, 0]), 1.0 / t.rate_hz, atol=1e-9)
            assert times[0, 0] == 0.0 and times[-1, 0] < dur and times[:, 1].max() <= dur + 1e-12
            if sid in (1, 2, 3, 4):  # no skipped tail: counts follow duration × the true rate
                expect = math.ceil(dur * 50 - 1e-9) if t.group == "encoder" else math.floor(dur * 50 / 4 + 1e-9)
                assert abs(want - expect) <= 1 and (t.group == "llm" or want == expect)
    # The skipped/dropped tails: 2.05 s and 2.02 s give one window's worth (the processor's own rules).
    assert layers["encoder.00"][5][0].shape[0] == layers["encoder.00"][6][0].shape[0] == 100
    assert layers["llm.00"][5][0].shape[0] == layers["llm.00"][6][0].shape[0] == 25
    assert man["frames"]["encoder"]["2"] == 215 and man["frames"]["llm"]["2"] == 54


def test_window_offsets(env: Any) -> None:
    """Sentence 2 (4.3 s) spans 3 processor windows; its 2nd window equals sentence 4 (that window alone)."""
    _, layers = run(env)
    for name in ("encoder.00", "encoder.01"):
        s2, t2 = layers[name][2]
        s4, t4 = layers[name][4]
        seg = slice(MAX_S * 50, 2 * MAX_S * 50)
        np.testing.assert_allclose(t2[seg], t4 + MAX_S, atol=1e-9)
        close(s2[seg], s4)
    t2 = layers["llm.00"][2][1]
    np.testing.assert_allclose(t2[25:50, 0], MAX_S + 0.08 * np.arange(25), atol=1e-9)
    np.testing.assert_allclose(t2[50:, 0], 2 * MAX_S + 0.08 * np.arange(4), atol=1e-9)


def test_hooks_and_audio_span_equal_the_models_own_computation(env: Any) -> None:
    """Encoder hooks are the raw packed block outputs (encoder LayerNorm of the last one = the encoder output);
    the LM's input at the pad span is the sum of the code embeddings of the bridge's RVQ codes, in order."""
    from hearlike.models.extract import LayerTaps, resolve_module

    entry, model, proc = load(env)
    assert type(model).__module__.startswith("transformers_modules.")
    ret = process(env, proc, entry, env["clips"][2])
    enc_len, br_len = ret.encoder_length.tolist(), ret.bridge_length.tolist()
    assert (enc_len, br_len) == ([100, 100, 16], [25, 25, 4])
    with torch.inference_mode(), LayerTaps(list(resolve_module(model, ENC_PATH))) as taps:
        out = model(input_ids=ret.input_ids, attention_mask=ret.attention_mask, audios=ret.audios,
                    encoder_length=ret.encoder_length, bridge_length=ret.bridge_length, output_hidden_states=True)
    hooks = taps.single()
    with torch.inference_mode():
        enc = model.audio_tokenizer.audio_model
        direct = enc(ret.audios, ret.encoder_length)
        codes = model.audio_tokenizer(ret.audios, ret.encoder_length, ret.bridge_length)
        emb = sum(layer(codes[:, i]) for i, layer in enumerate(model.model.audio_embed_layers))
    assert hooks[-1].shape == (sum(enc_len), 32)
    with torch.inference_mode():
        normed = enc.layer_norm(hooks[-1])
    valid = torch.cat([direct[i, :n] for i, n in enumerate(enc_len)])
    torch.testing.assert_close(normed, valid)
    assert float((hooks[-1] - valid).abs().max()) > 1e-3  # the stored last block is pre-LayerNorm
    assert codes.shape == (sum(br_len), 3)
    pos = np.flatnonzero(ret.input_ids[0].numpy() == model.config.audio_config.audio_pad_token_id)
    torch.testing.assert_close(out.hidden_states[0][0, pos], emb)
    # The stored layers are these hooks / states.
    _, layers = run(env, settings={"store_embedding_layer": True})
    close(layers["encoder.01"][2][0], hooks[-1][:215].numpy())  # frame 16 of the 0.3 s window starts at its end
    close(layers["llm.emb"][2][0], emb.numpy())
    close(layers["llm.00"][2][0], out.hidden_states[1][0, pos].numpy())


@pytest.mark.parametrize("tag", ["base", "instruct"])
def test_audio_span_positions_and_prompt(env: Any, tag: str) -> None:
    entry, model, proc = load(env, tag)
    ac = model.config.audio_config
    ret = process(env, proc, entry, env["clips"][3])
    ids = ret.input_ids[0].tolist()
    pos = np.flatnonzero(np.asarray(ids) == ac.audio_pad_token_id)
    mel = len(env["clips"][3]) // 160 + 1
    assert len(pos) == int(ret.bridge_length.sum()) == ((mel - 1) // 2 + 1) // 4 == 17
    assert np.all(np.diff(pos) == 1)
    assert ids[pos[0] - 1] == ac.audio_start_token_id and ids[pos[-1] + 1] == ac.audio_end_token_id
    tok = proc.tokenizer
    head, _, tail = entry.prompt.partition("{audio}")
    assert tok.decode(ids[:pos[0]]) == head + "<audio_start_baichuan>"
    assert tok.decode(ids[pos[-1] + 1:]) == "<audio_end_baichuan>" + tail
    if tag == "instruct":
        assert ids[0] == tok.convert_tokens_to_ids("<C_Q>") and ids[-1] == tok.convert_tokens_to_ids("<C_A>")
        man, layers = run(env, "instruct", settings={"targets": ["llm"]})
        assert sorted(layers) == ["llm.00", "llm.01"] and man["frames"]["llm"]["3"] == 17


def test_llm_last_layer_raw_vs_post_norm(env: Any) -> None:
    _, post = run(env)
    _, raw = run(env, settings={"llm_last_layer": "raw"})
    for sid in post["llm.00"]:
        close(post["llm.00"][sid][0], raw["llm.00"][sid][0])
    a, b = post["llm.01"][1][0], raw["llm.01"][1][0]
    assert a.shape == b.shape and float(np.abs(a - b).max()) > 1e-2
    np.testing.assert_allclose(np.sqrt((a.astype(np.float64) ** 2).mean(axis=1)), 1.0, rtol=2e-2)


def test_embedding_layer_and_targets_subset(env: Any) -> None:
    man, layers = run(env, settings={"store_embedding_layer": True})
    _, plain = run(env)
    assert [m["name"] for m in man["extra_layers"]] == ["encoder.emb", "llm.emb"]
    for g in ("encoder", "llm"):
        for sid, (states, times) in layers[f"{g}.emb"].items():
            first, ftimes = plain[f"{g}.00"][sid]
            np.testing.assert_array_equal(times, ftimes)
            assert states.shape == first.shape and float(np.abs(states - first).max()) > 1e-3
    enc_only, enc_layers = run(env, settings={"targets": ["encoder"]})
    assert sorted(enc_layers) == ["encoder.00", "encoder.01"] and "llm" not in enc_only["frames"]
    close(enc_layers["encoder.01"][2][0], plain["encoder.01"][2][0])


def test_remote_code_refusals(env: Any, tmp_path: Path) -> None:
    reg = json.loads(json.dumps(env["reg"]))
    good = reg["models"][KEYS["base"]]
    d = tmp_path / "bc"
    shutil.copytree(env["dirs"]["base"], d)

    def entry_with(**kw: Any) -> Any:
        reg["models"]["bc-x"] = {**good, **kw}
        p = tmp_path / "reg.yaml"
        p.write_text(yaml.safe_dump(reg, sort_keys=False))
        return get_entry(p, "bc-x")

    with pytest.raises(RemoteCodeRefusedError, match="not a pinned"):
        load_model(entry_with(revision=None), d, device="cpu")
    with pytest.raises(RemoteCodeRefusedError, match="registry pins"):
        load_model(entry_with(revision="0" * 40), d, device="cpu")
    (d / "processor_omni.py").write_text((d / "processor_omni.py").read_text() + "\n# changed\n")
    with pytest.raises(RemoteCodeRefusedError, match="modified"):
        load_model(entry_with(), d, device="cpu")


def test_bad_input_and_settings(env: Any, tmp_path: Path) -> None:
    from hearlike.models.extract import Clip

    entry, model, proc = load(env)
    ad = BaichuanAudioAdapter(entry, model, proc, device="cpu", dtype=torch.float32, settings=merge_settings(None))
    with pytest.raises(ValueError, match="too short"):
        ad.run([Clip(7, speechlike_audio(0.05, seed=7))])  # 0.05 s: 6 mel → 3 encoder frames → 0 tokens
    with pytest.raises(ValueError, match="not supported"):
        BaichuanAudioAdapter(entry, model, proc, device="cpu", dtype=torch.float32,
                             settings=merge_settings({"window_s": 1.0}))
    reg = json.loads(json.dumps(env["reg"]))
    for field, value, msg in [("audio_placeholder", "<audio_start_baichuan>{tokens}<audio_end_baichuan>", "JSON"),
                              ("audio_placeholder", "<audio_start>{audio_json}<audio_end>", "audio tags"),
                              ("targets", {**reg["models"][KEYS["base"]]["targets"],
                                           "llm": {**reg["models"][KEYS["base"]]["targets"]["llm"], "rate_hz": 25}},
                               "12.5 Hz")]:
        reg["models"]["bc-bad"] = {**reg["models"][KEYS["base"]], field: value}
        p = tmp_path / "reg.yaml"
        p.write_text(yaml.safe_dump(reg, sort_keys=False))
        with pytest.raises(ValueError, match=msg):
            BaichuanAudioAdapter(get_entry(p, "bc-bad"), model, proc, device="cpu", dtype=torch.float32,
                                 settings=merge_settings(None))


@pytest.mark.parametrize("overlap_s", [0.0, 0.5, -1.0])
def test_window_bounds_follow_split_with_overlap(env: Any, overlap_s: float) -> None:
    """The adapter's window bounds equal the (stand-in) processor's split, overlaps included."""
    proc = load(env)[2]
    ap = proc.audio_processor
    old = ap.config.split_overlap
    ap.config.split_overlap = overlap_s
    try:
        for n in (16000, 32000, 32001, 32300, 64000, 70000, 100000):
            wav = torch.arange(n, dtype=torch.float32)[None]
            pieces = [(int(p[0, 0]), int(p[0, -1]) + 1) for p in ap.split_with_overlap(wav)]
            ours = window_bounds(n, max_samples=MAX_S * SR, overlap_samples=int(SR * overlap_s), min_samples=400,
                                 split=overlap_s >= 0)
            assert ours == pieces, (n, overlap_s)
    finally:
        ap.config.split_overlap = old


def test_overlapping_windows_keep_times_increasing(env: Any, tmp_path: Path) -> None:
    """With split_overlap 0.5 s, frames a window repeats from the previous one are not stored twice."""
    d = _builder().build_standin(tmp_path / "ov", hub_id="baichuan-inc/Baichuan-Audio-Base", seed=3,
                                 split_overlap=0.5)
    reg = json.loads(json.dumps(env["reg"]))
    reg["models"][KEYS["base"]]["revision"] = read_model_marker(d)["revision"]
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump(reg, sort_keys=False))
    audio = tmp_path / "a.npz"
    np.savez(audio, s0002=env["clips"][2])
    man = extract_activations(key=KEYS["base"], registry=p, model_dir=d, audio_npz=audio, out_dir=tmp_path / "act",
                              device="cpu")
    enc_states, enc_t = read_layer(tmp_path / "act" / "encoder.00.safetensors")[2]
    llm_t = read_layer(tmp_path / "act" / "llm.00.safetensors")[2][1]
    # Windows [0, 2), [1.5, 3.5), [3.0, 4.3) s: encoder 100 + 75 + 40 frames on one 20 ms grid.
    assert enc_states.shape[0] == 215 == man["frames"]["encoder"]["2"]
    np.testing.assert_allclose(np.diff(enc_t[:, 0]), 0.02, atol=1e-9)
    # Tokens: 25 + 18 (1.5 + 0.08 j ≥ 2.0) + 9 (3.0 + 0.08 j ≥ 3.5, j < 16).
    assert llm_t.shape[0] == 52 and np.all(np.diff(llm_t[:, 0]) > 0)
    np.testing.assert_allclose(llm_t[25:27, 0], [1.5 + 0.08 * 7, 1.5 + 0.08 * 8], atol=1e-9)
