"""SpeechGPT-2.0-preview adapter on an offline stand-in (``tests/standins/speechgpt2``).

The stand-in package mirrors the real checkout's import paths (``mimo_qwen2_grouped``, ``Codec.models.codec``,
``Codec/config/sg2_codec_config.yaml``, ``extra/greetings.jsonl``) and frame arithmetic; weights, tokenizer and
codec are tiny and random. The registry entry is the real one with only what the stand-in needs overridden.
"""

from __future__ import annotations

import copy
import dataclasses
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
from hearlike.models.extract import Clip, extract_activations, merge_settings  # noqa: E402
from hearlike.models.families import speechgpt2 as sg2  # noqa: E402
from hearlike.models.loaders import CODE_DIR, RemoteCodeRefusedError, load_model  # noqa: E402
from hearlike.models.registry import default_registry_path, get_entry  # noqa: E402
from hearlike.models.tiny import _byte_tokenizer, speechlike_audio, write_model_marker  # noqa: E402

SR = 16000
KEY = "speechgpt-2.0-preview-7b"
STANDIN = Path(__file__).resolve().parent / "standins" / "speechgpt2"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|sosp|>", "<|eosp|>", "<|empty|>", "<|end_empty|>"]
# The demo's first turn (mode s2s, greeting line 0), as proposed for resources/models.yaml.
SYSTEM = "You are an helpful assistant. You should answer the user's speech questions in speech.\n\n\n"
PROMPT = SYSTEM + "{seg}[|SpeechGPT|]: {greeting} ###\n{eos}{seg}[|Human|]: {audio} ###\n[|SpeechGPT|]: "
PLACEHOLDER = "<|sosp|>{codec_tokens}<|eosp|>"
DURATIONS = {1: 2.0, 2: 3.37, 3: 0.71}
HIDDEN, LAYERS = 32, 2
GREETING_POS = 5  # greeting: 5 speech positions (15 codec frames), 4 text tokens (padded with <|empty|>)


def _drop_standin_modules() -> None:
    for name in list(sys.modules):
        if name == "mimo_qwen2_grouped" or name == "Codec" or name.startswith("Codec."):
            del sys.modules[name]


def _build(model_dir: Path, entry_raw: dict[str, Any]) -> None:
    """Stand-in checkout + tokenizer + tiny MIMO LM + codec checkpoint + marker (like download_model)."""
    code_dir = model_dir / CODE_DIR
    shutil.copytree(STANDIN, code_dir, ignore=shutil.ignore_patterns("__pycache__"))
    tok = _byte_tokenizer(SPECIALS, pad="<|endoftext|>")
    tok.save_pretrained(model_dir)
    rng = np.random.default_rng(7)
    greet_text = tok("hi!", add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|end_empty|>")]
    lines = [{"text": greet_text, "audio": rng.integers(0, 1024, GREETING_POS * 3 * 3).tolist()},
             {"text": greet_text[:1], "audio": rng.integers(0, 1024, 9).tolist()}]
    (code_dir / "extra").mkdir()
    (code_dir / sg2.GREETINGS).write_text("".join(json.dumps(g) + "\n" for g in lines))
    sys.path.insert(0, str(code_dir))
    try:
        import mimo_qwen2_grouped as mimo
        from Codec.models.codec import Generator
        from transformers import Qwen2Config

        torch.manual_seed(0)
        cfg = Qwen2Config(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=64, vocab_size=len(tok), max_position_embeddings=1024,
                          tie_word_embeddings=False, architectures=["MIMOLlamaForCausalLM"])
        model = mimo.MIMOLlamaForCausalLM(cfg, padding_idx=tok.pad_token_id,
                                          sosp_idx=tok.convert_tokens_to_ids("<|sosp|>"),
                                          eosp_idx=tok.convert_tokens_to_ids("<|eosp|>"), args=mimo.MIMOModelArguments())
        model.save_pretrained(model_dir)
        codec_cfg = yaml.safe_load((code_dir / sg2.CODEC_CONFIG).read_text())["generator_params"]
        codec = Generator(**codec_cfg)
        comp = entry_raw["companions"][0]
        cdir = model_dir / "companions" / comp["hub_id"].replace("/", "__")
        cdir.mkdir(parents=True)
        torch.save(codec.state_dict(), cdir / sg2.CODEC_CKPT)
    finally:
        sys.path.remove(str(code_dir))
        _drop_standin_modules()
    code = entry_raw["code"]
    write_model_marker(model_dir, hub_id=entry_raw["hub_id"], created_by="tests/test_family_speechgpt2.py",
                       extra={"code": {"repo": code["repo"], "commit": code["commit"]},
                              "companions": [{"hub_id": comp["hub_id"], "revision": None,
                                              "dir": str(cdir.relative_to(model_dir))}]})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sg2")
    reg = yaml.safe_load(default_registry_path().read_text())
    real = reg["models"][KEY]
    model_dir = root / "model"
    _build(model_dir, real)
    e = copy.deepcopy(real)
    marker = json.loads((model_dir / "hearlike_model.json").read_text())
    e.update(revision=marker["revision"], adapter="implemented", dtype="float32", prompt=PROMPT,
             audio_placeholder=PLACEHOLDER,
             resources={"gpus": 0, "mem_mb": 2000, "runtime_min": 5, "batch_size": 2})
    e["targets"]["llm"].update(n_layers=LAYERS, hidden_size=HIDDEN, rate_hz=25 / 3)
    reg["models"] = {KEY: e}
    reg_path = root / "models.yaml"
    reg_path.write_text(yaml.safe_dump(reg, sort_keys=False))
    clips = {sid: speechlike_audio(d, seed=sid) for sid, d in DURATIONS.items()}
    audio = root / "audio.npz"
    np.savez(audio, **{f"s{sid:04d}": a for sid, a in clips.items()})
    code_path = str((model_dir / CODE_DIR).resolve())
    yield {"root": root, "registry": reg_path, "model_dir": model_dir, "audio": audio, "clips": clips,
           "entry": get_entry(reg_path, KEY), "results": {}}
    while code_path in sys.path:
        sys.path.remove(code_path)
    _drop_standin_modules()


def run(env: dict[str, Any], **settings: Any) -> tuple[dict[str, Any], dict[str, dict[int, Any]]]:
    tag = repr(sorted(settings.items()))
    if tag not in env["results"]:
        out = env["root"] / f"act-{len(env['results'])}"
        man = extract_activations(key=KEY, registry=env["registry"], model_dir=env["model_dir"], audio_npz=env["audio"],
                                  out_dir=out, device="cpu", settings=settings or None)
        layers = {m["name"]: read_layer(out / m["file"]) for m in man["layers"] + man["extra_layers"]}
        env["results"][tag] = (man, layers)
    return env["results"][tag]


def adapter(env: dict[str, Any], entry: Any = None, **settings: Any) -> Any:
    entry = entry or env["entry"]
    model, proc = load_model(entry, env["model_dir"], device="cpu")
    return sg2.ADAPTER(entry, model, proc, device="cpu", dtype=torch.float32, settings=merge_settings(settings))


def n_stored(n_samples: int) -> int:
    """Speech positions kept: hold a real codec frame and start inside the clip."""
    return min(math.ceil(sg2.codec_frames(n_samples) / 3), math.ceil(n_samples / SR * 25 / 3 - 1e-9))


# --------------------------------------------------------------------------------------- tests
def test_layers_counts_and_times(env: dict[str, Any]) -> None:
    man, layers = run(env)
    assert [m["name"] for m in man["layers"]] == ["llm.00", "llm.01"] and man["extra_layers"] == []
    for name, data in layers.items():
        assert sorted(data) == sorted(DURATIONS)
        for sid, (states, times) in data.items():
            n = len(env["clips"][sid])
            dur = n / SR
            assert states.shape == (n_stored(n), HIDDEN) and np.all(np.isfinite(states))
            assert abs(states.shape[0] - dur * 25 / 3) <= 1.0, (name, sid, states.shape)
            np.testing.assert_allclose(times[:, 0], 0.12 * np.arange(len(times)), atol=1e-9)
            np.testing.assert_allclose(times[:-1, 1] - times[:-1, 0], 0.12, atol=1e-9)
            assert times[-1, 0] < dur and times[-1, 1] == pytest.approx(min(dur, times[-1, 0] + 0.12))
    assert man["frames"]["llm"] == {str(s): n_stored(len(a)) for s, a in env["clips"].items()}


@pytest.mark.parametrize("n", [160, 1601, 16000, 32000, 53920, 11360])
def test_codec_frame_arithmetic(env: dict[str, Any], n: int) -> None:
    """Resample length ceil(3n/2); codes [3, 1, ceil((n24 // 240) / 4)] from the codec's own encode path."""
    a = adapter(env)
    audio = speechlike_audio(n / SR, seed=n)
    wav = sg2.resample(torch.from_numpy(audio)[None], SR, 24000)
    assert wav.shape == (1, math.ceil(3 * n / 2))
    with torch.inference_mode():
        raw = a.processor.codec.inference_tokenize(wav.reshape(1, 1, -1))
    n_codec = math.ceil((math.ceil(3 * n / 2) // 240) / 4)
    assert tuple(raw.shape) == (3, 1, n_codec) == (3, 1, sg2.codec_frames(n))
    codes = a.codes(audio)
    np.testing.assert_array_equal(codes, raw[:, 0].T.numpy())  # frame-major [N, n_vq]
    assert codes.min() >= 0 and codes.max() < 1024
    frames = a.speech_frames(codes)
    assert len(frames) % 3 == 0 and 1 <= len(frames) - n_codec - 8 <= 3
    np.testing.assert_array_equal(frames[n_codec:], np.tile(sg2.SILENCE_FRAME, (len(frames) - n_codec, 1)))


def test_input_layout_follows_demo(env: dict[str, Any]) -> None:
    a = adapter(env)
    tok = a.processor.tokenizer
    codes = a.codes(env["clips"][2])
    cols, start, n_pos = a.build_input(codes)
    frames = a.speech_frames(codes)
    assert cols.shape == (4, cols.shape[1]) and cols.shape[1] % 3 == 0 and n_pos == len(frames) // 3
    # Byte tokenizer without merges: one token per UTF-8 byte; special tokens one each.
    nb = [len(s.encode()) for s in (SYSTEM, "[|SpeechGPT|]: ", " ###\n", "[|Human|]: ", " ###\n[|SpeechGPT|]: ")]
    assert start == nb[0] + nb[1] + (GREETING_POS + 2) + (nb[2] + 1) + nb[3] + 1
    assert cols.shape[1] // 3 == start + n_pos + 1 + nb[4]
    text = cols[0, ::3]
    assert np.all(cols[0].reshape(-1, 3)[:, 1:] == -100)
    sosp, eosp, empty = (tok.convert_tokens_to_ids(t) for t in ("<|sosp|>", "<|eosp|>", "<|empty|>"))
    assert np.flatnonzero(text == sosp).tolist() == [nb[0] + nb[1], start - 1]  # greeting, then the sentence
    assert np.flatnonzero(text == eosp).tolist() == [nb[0] + nb[1] + GREETING_POS + 1, start + n_pos]
    assert np.all(text[start:start + n_pos] == empty)
    assert text[nb[0] + nb[1] + GREETING_POS + 2 + nb[2]] == tok.convert_tokens_to_ids(tok.eos_token)
    # The greeting (line 0): its 4 text tokens then <|empty|>; its codes in the speech rows.
    g = json.loads((a.processor.code_dir / sg2.GREETINGS).read_text().splitlines()[0])
    g0 = nb[0] + nb[1] + 1
    assert text[g0:g0 + GREETING_POS].tolist() == g["text"] + [empty]
    np.testing.assert_array_equal(cols[1:, 3 * g0:3 * (g0 + GREETING_POS)].T.reshape(-1), g["audio"])
    # Speech rows: the codec frames at the span, zero embedding (1024) wherever a position holds no speech.
    np.testing.assert_array_equal(cols[1:, 3 * start:3 * (start + n_pos)].T, frames)
    speech_pos = np.zeros(cols.shape[1] // 3, bool)
    speech_pos[start:start + n_pos] = speech_pos[g0:g0 + GREETING_POS] = True
    assert np.all(cols[1:].reshape(3, -1, 3)[:, ~speech_pos] == 1024)


def test_embedding_and_states_equal_direct_computation(env: dict[str, Any]) -> None:
    """The LM input at the span is embed(<|empty|>) + downcast(3 grouped frames); stored = hidden_states."""
    a = adapter(env, store_embedding_layer=True, llm_last_layer="raw")
    model = a.model
    audio = env["clips"][1]
    codes = a.codes(audio)
    cols, start, n_pos = a.build_input(codes)
    frames = a.speech_frames(codes)
    with torch.inference_mode():
        out = model(input_ids=torch.from_numpy(np.ascontiguousarray(cols.T).reshape(1, -1)),
                    output_hidden_states=True)
        grouped = torch.from_numpy(frames).reshape(n_pos, 3, 3)  # [position, frame in group, level]
        summed = sum(model.speech_embedddings[i](grouped[:, :, i]) for i in range(3))
        want = model.model.embed_tokens(torch.full((n_pos,), a.empty)) + model.speech_group_downcast(
            summed.reshape(n_pos, -1))
    torch.testing.assert_close(out.hidden_states[0][0, start:start + n_pos], want)
    res = a.run([Clip(1, audio)])[0]
    k = n_stored(len(audio))
    assert sorted(res) == ["llm.00", "llm.01", "llm.emb"]
    np.testing.assert_allclose(res["llm.emb"][0], want[:k].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res["llm.00"][0], out.hidden_states[1][0, start:start + k].numpy(), rtol=1e-5, atol=1e-6)
    raw = torch.from_numpy(res["llm.01"][0])
    with torch.inference_mode():
        torch.testing.assert_close(model.model.norm(raw), out.hidden_states[2][0, start:start + k])
    assert float((raw - out.hidden_states[2][0, start:start + k]).abs().max()) > 1e-2


def test_raw_last_layer_and_embedding_layer(env: dict[str, Any]) -> None:
    _, post = run(env)
    man2, raw = run(env, llm_last_layer="raw", store_embedding_layer=True)
    assert [m["name"] for m in man2["extra_layers"]] == ["llm.emb"] and man2["llm_last_layer"] == "raw"
    assert man2["extra_layers"][0]["rate_hz"] == pytest.approx(25 / 3)
    for sid in DURATIONS:
        np.testing.assert_array_equal(post["llm.00"][sid][0], raw["llm.00"][sid][0])
        assert raw["llm.emb"][sid][0].shape == post["llm.00"][sid][0].shape
        np.testing.assert_array_equal(raw["llm.emb"][sid][1], post["llm.00"][sid][1])
        a, b = post["llm.01"][sid][0], raw["llm.01"][sid][0]
        assert float(np.abs(a - b).max()) > 1e-2
        np.testing.assert_allclose(np.sqrt((a.astype(np.float64) ** 2).mean(1)), 1.0, rtol=2e-2)  # RMSNorm'd


def test_registry_without_sosp_and_greeting(env: dict[str, Any]) -> None:
    """prompt "{audio}" / placeholder "{codec_tokens}": only the speech frames, span at position 0."""
    entry = dataclasses.replace(env["entry"], prompt="{audio}", audio_placeholder="{codec_tokens}")
    a = adapter(env, entry)
    codes = a.codes(env["clips"][3])
    cols, start, n_pos = a.build_input(codes)
    assert start == 0 and cols.shape[1] == 3 * n_pos and np.all(cols[0, ::3] == a.empty)
    res = a.run([Clip(3, env["clips"][3])])[0]
    assert res["llm.00"][0].shape == (n_stored(len(env["clips"][3])), HIDDEN)


def test_targets_and_window_and_rate_checks(env: dict[str, Any]) -> None:
    assert adapter(env, targets=["llm"]).groups == ["llm"]
    with pytest.raises(ValueError, match="not in the registry targets"):
        adapter(env, targets=["encoder"])
    with pytest.raises(ValueError, match="whole clips"):
        adapter(env, window_s=1.0)
    t = dataclasses.replace(env["entry"].targets["llm"], rate_hz=25.0)  # the registry's current value
    with pytest.raises(ValueError, match=r"rate_hz 25\.0"):
        adapter(env, dataclasses.replace(env["entry"], targets={"llm": t}))
    with pytest.raises(ValueError, match="audio_placeholder"):
        adapter(env, dataclasses.replace(env["entry"], audio_placeholder="<speech>"))
    t = dataclasses.replace(env["entry"].targets["llm"], n_layers=28)
    with pytest.raises(ValueError, match="registry says"):
        adapter(env, dataclasses.replace(env["entry"], targets={"llm": t}))


def test_too_short_clip_is_a_clear_error(env: dict[str, Any]) -> None:
    a = adapter(env)
    with pytest.raises(ValueError, match="shorter than one codec mel hop"):
        a.run([Clip(9, np.zeros(100, np.float32))])


def test_silence_only_position_is_dropped(env: dict[str, Any]) -> None:
    """1987 samples: 12 mel frames → 3 codec frames → 1 real position, although a 2nd one starts at
    0.12 s < 0.124 s (it holds only the appended silence)."""
    a = adapter(env)
    n = 1987
    assert sg2.codec_frames(n) == 3 and math.ceil(n / SR * 25 / 3) == 2
    res = a.run([Clip(9, speechlike_audio(n / SR, seed=3))])[0]
    assert res["llm.00"][0].shape == (1, HIDDEN) and res["llm.00"][1].tolist() == [[0.0, 0.12]]


def test_refuses_unpinned_or_modified_code(env: dict[str, Any], tmp_path: Path) -> None:
    entry = env["entry"]
    bad = dataclasses.replace(entry, code={**entry.code, "commit": "0" * 40})
    with pytest.raises(RemoteCodeRefusedError, match="registry pins"):
        load_model(bad, env["model_dir"], device="cpu")
    copy_dir = tmp_path / "model"
    shutil.copytree(env["model_dir"], copy_dir, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy_dir / CODE_DIR / "Codec" / "models" / "codec.py").open("a") as f:
        f.write("\n# edited\n")
    with pytest.raises(RemoteCodeRefusedError, match="modified after download"):
        load_model(entry, copy_dir, device="cpu")
    (copy_dir / CODE_DIR / "extra_module.py").write_text("x = 1\n")
    shutil.rmtree(copy_dir / CODE_DIR)
    with pytest.raises(RemoteCodeRefusedError, match="own code is missing"):
        load_model(entry, copy_dir, device="cpu")


def test_sinc_resample_matches_a_sine() -> None:
    """Our fallback resampler: length ceil(3n/2) and a 300 Hz tone lands on the 24 kHz grid."""
    n = 16001
    t16 = np.arange(n) / SR
    x = torch.from_numpy(np.sin(2 * np.pi * 300 * t16).astype(np.float32))[None]
    y = sg2.sinc_resample(x, SR, 24000)[0].numpy()
    assert y.shape == (math.ceil(3 * n / 2),)
    ref = np.sin(2 * np.pi * 300 * np.arange(len(y)) / 24000)
    np.testing.assert_allclose(y[200:-200], ref[200:-200], atol=2e-3)
    try:
        import torchaudio.functional as taf
    except Exception:
        return
    torch.testing.assert_close(sg2.sinc_resample(x, SR, 24000), taf.resample(x, SR, 24000))


def test_stand_in_modules_come_from_the_checkout(env: dict[str, Any]) -> None:
    adapter(env)
    code = (env["model_dir"] / CODE_DIR).resolve()
    for name in ("mimo_qwen2_grouped", "Codec.models.codec"):
        assert Path(sys.modules[name].__file__).resolve().is_relative_to(code)
