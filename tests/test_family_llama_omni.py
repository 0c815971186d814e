"""LLaMA-Omni adapter on a tiny offline stand-in of ``ICTNLP/Llama-3.1-8B-Omni`` (``tests/standins/llama_omni``).

The stand-in mirrors the ``omni_speech`` package's module paths, classes and bookkeeping (−200 speech mark,
``encode_speech`` lengths, ×5 frame stacking, in-place expansion, labels) and a ``whisper`` test double; the
registry entry is the real one with only revision, adapter, sizes, dtype and resources overridden.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
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
from hearlike.models.loaders import CODE_DIR, RemoteCodeRefusedError, load_model  # noqa: E402
from hearlike.models.registry import default_registry_path, get_entry, layer_names  # noqa: E402
from hearlike.models.tiny import read_model_marker, speechlike_audio  # noqa: E402

KEY = "llama-3.1-8b-omni"
SR = 16000
STANDIN = Path(__file__).resolve().parent / "standins" / "llama_omni"
DURATIONS = {1: 2.0, 2: 1.37, 3: 30.5}  # sentence 3 spans two 30 s windows; sentence 4 = its second window
N_MEL, N_ENC, N_TOK = 3000, 1500, 300  # per padded 30 s window: mel frames, (3000+1)//2, 1500//5
# The official llama_3 conversation (conversation.py) with "<speech>" as the user turn: proposed registry prompt.
TEMPLATE = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and speech "
            "assistant. You are able to understand the speech content that the user provides, and assist the user "
            "with a variety of tasks using natural language.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            "{audio}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def _builder() -> Any:
    spec = importlib.util.spec_from_file_location("hearlike_test_llama_omni_build", STANDIN / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _entry(reg: dict[str, Any], revision: str, **over: Any) -> dict[str, Any]:
    """The real registry entry with only what the stand-in must change."""
    e = copy.deepcopy(reg["models"][KEY])
    e.update(revision=revision, adapter="implemented", dtype="float32", **over)
    e["targets"]["encoder"].update(n_layers=2, hidden_size=64)
    e["targets"]["llm"].update(n_layers=2, hidden_size=64)
    e["resources"] = {"gpus": 0, "mem_mb": 1000, "runtime_min": 1, "batch_size": 2}
    return e


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("llama_omni")
    build = _builder()
    path_before = list(sys.path)
    sys.path.insert(0, str(build.SITE))  # the whisper test double stands in for the pip-installed openai-whisper
    model_dir = build.build(root / "model", seed=3)
    rev = read_model_marker(model_dir)["revision"]
    reg = yaml.safe_load(default_registry_path().read_text())
    reg["models"][KEY] = _entry(reg, rev)
    reg["models"]["omni-template"] = _entry(reg, rev, prompt=TEMPLATE)
    reg["models"]["omni-bad-placeholder"] = _entry(reg, rev, audio_placeholder="<|audio|>")
    reg_path = root / "models.yaml"
    reg_path.write_text(yaml.safe_dump(reg, sort_keys=False))
    clips = {sid: speechlike_audio(d, seed=sid) for sid, d in DURATIONS.items()}
    clips[4] = clips[3][30 * SR:].copy()
    audio = root / "audio.npz"
    np.savez(audio, **{f"s{sid:04d}": a for sid, a in clips.items()})
    yield {"root": root, "registry": reg_path, "dir": model_dir, "audio": audio, "clips": clips, "build": build,
           "results": {}, "loaded": {}}
    sys.path[:] = path_before  # also drops <model_dir>/hearlike_code added by check_package_code
    for name in build.standin_modules():
        del sys.modules[name]


def close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to the float16 storage of the layer files."""
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * float(np.abs(want).max()))


def run(env: dict[str, Any], key: str = KEY, **kw: Any) -> tuple[dict[str, Any], dict[str, dict[int, Any]]]:
    """Extract (memoised per settings) and read every stored layer back."""
    tag = (key, repr(sorted(kw.items())))
    if tag not in env["results"]:
        out = env["root"] / f"act-{len(env['results'])}"
        man = extract_activations(key=key, registry=env["registry"], model_dir=env["dir"], audio_npz=env["audio"],
                                  out_dir=out, device="cpu", **kw)
        layers = {m["name"]: read_layer(out / m["file"]) for m in man["layers"] + man["extra_layers"]}
        env["results"][tag] = (man, layers)
    return env["results"][tag]


def adapter(env: dict[str, Any], key: str = KEY, **settings: Any) -> Any:
    from hearlike.models.families.llama_omni import ADAPTER

    entry = get_entry(env["registry"], key)
    if "model" not in env["loaded"]:
        env["loaded"]["model"] = load_model(entry, env["dir"], device="cpu")
    model, tok = env["loaded"]["model"]
    return ADAPTER(entry, model, tok, device="cpu", dtype=torch.float32, settings=merge_settings(settings))


def test_layers_frames_and_times(env: dict[str, Any]) -> None:
    man, layers = run(env)
    entry = get_entry(env["registry"], KEY)
    assert [m["name"] for m in man["layers"]] == layer_names(entry) == ["encoder.00", "encoder.01", "llm.00", "llm.01"]
    assert man["extra_layers"] == []
    for name, data in layers.items():
        t = entry.targets[name.split(".")[0]]
        assert sorted(data) == [1, 2, 3, 4]
        for sid, (states, times) in data.items():
            dur = len(env["clips"][sid]) / SR
            assert states.shape == (math.ceil(dur * t.rate_hz - 1e-9), 64) and np.all(np.isfinite(states))
            np.testing.assert_allclose(np.diff(times[:, 0]), 1.0 / t.rate_hz, atol=1e-9)  # also across windows
            assert times[0, 0] == 0.0 and times[-1, 0] < dur and times[:, 1].max() <= dur + 1e-12
            np.testing.assert_allclose(times[:-1, 1] - times[:-1, 0], 1.0 / t.rate_hz, atol=1e-9)
    assert man["frames"]["encoder"]["3"] == 1525 and man["frames"]["llm"]["3"] == 305  # 30.5 s at 50 / 10 Hz


def test_lengths_and_span_follow_the_real_formulas(env: dict[str, Any]) -> None:
    """infer.py: padded 3000-frame mel, speech_lengths 3000 → (3000+1)//2 = 1500 encoder frames → //5 = 300
    features per window, all in the LM sequence at the −200 position (the second window right after the first)."""
    from omni_speech.datasets.preprocess import tokenizer_speech_token

    ad = adapter(env)
    clips = [Clip(sid, env["clips"][sid]) for sid in (1, 3)]
    inp = ad.inputs(clips)
    assert tuple(inp["speech"].shape) == (3, N_MEL, 128) and inp["speech_lengths"].tolist() == [N_MEL] * 3
    assert inp["n_enc"] == [N_ENC] * 3 and inp["n_tok"] == [N_TOK] * 3
    entry = get_entry(env["registry"], KEY)
    for b, n_win in enumerate((1, 2)):
        prompt = entry.prompt.replace("{audio}", "<speech>" * n_win)
        ids = tokenizer_speech_token(prompt, ad.processor)
        assert ids[0] == ad.processor.bos_token_id and ids.count(-200) == n_win
        p = ids.index(-200)
        assert inp["input_ids"][b, :len(ids)].tolist() == ids and int(inp["attention_mask"][b].sum()) == len(ids)
        assert inp["spans"][b] == [(p + j * N_TOK, N_TOK) for j in range(n_win)]
    with torch.inference_mode():
        out, labels, attn = ad.forward(inp)
    # The model's own labels mark exactly those spans (IGNORE_INDEX on speech, padding excluded by the mask).
    lengths = [len(tokenizer_speech_token(entry.prompt.replace("{audio}", "<speech>" * n), ad.processor))
               + n * (N_TOK - 1) for n in (1, 2)]
    assert attn.sum(-1).tolist() == lengths and out.hidden_states[0].shape[1] == max(lengths)
    for b in range(2):
        marked = np.flatnonzero(((labels[b] == -100) & attn[b].bool()).numpy())
        want = np.concatenate([np.arange(s, s + n) for s, n in inp["spans"][b]])
        np.testing.assert_array_equal(marked, want)


def test_window_offsets(env: dict[str, Any]) -> None:
    """Sentence 3 (30.5 s) is two windows; its second window equals sentence 4 (its last 0.5 s) run alone."""
    _, layers = run(env)
    for name in ("encoder.00", "encoder.01"):
        s3, t3 = layers[name][3]
        s4, t4 = layers[name][4]
        assert s3.shape[0] == 1525 and s4.shape[0] == 25
        np.testing.assert_allclose(t3[1500:], t4 + 30.0, atol=1e-9)
        close(s3[1500:], s4)
    s3, t3 = layers["llm.00"][3]
    np.testing.assert_allclose(t3[300:, 0], 30.0 + 0.1 * np.arange(5), atol=1e-9)


def test_hooks_and_llm_states_equal_direct_computation(env: dict[str, Any]) -> None:
    """encoder.NN = block NN of openai-whisper's encoder on the padded mel (no ln_post); llm.emb = projector
    output; llm.NN = hidden_states of the model's own forward(input_ids, speech, speech_lengths) at the span."""
    _, layers = run(env, settings={"store_embedding_layer": True})
    ad = adapter(env)
    model = ad.model
    audio = env["clips"][1]
    mel = ad.mel(audio)[None]  # [1, 3000, 128]
    enc = model.get_speech_encoder()
    with torch.inference_mode():
        x = torch.nn.functional.gelu(enc.conv2(torch.nn.functional.gelu(enc.conv1(mel.permute(0, 2, 1)))))
        x = x.permute(0, 2, 1) + enc.positional_embedding
        emb, blocks = x, []
        for blk in enc.blocks:
            x = blk(x)
            blocks.append(x)
        feats = model.get_speech_projector()(enc.ln_post(x))
        ids = ad.inputs([Clip(1, audio)])["input_ids"]
        out = model(input_ids=ids, speech=mel, speech_lengths=torch.tensor([N_MEL]), output_hidden_states=True)
    n_enc, n_tok = 100, 20
    close(layers["encoder.emb"][1][0], emb[0, :n_enc].numpy())
    for i, b in enumerate(blocks):
        close(layers[f"encoder.{i:02d}"][1][0], b[0, :n_enc].numpy())
    with torch.inference_mode():
        last = enc.ln_post(blocks[-1])[0, :n_enc].numpy()
    assert np.abs(layers["encoder.01"][1][0] - last).max() > 1e-2  # stored raw, not after ln_post
    assert feats.shape[1] == N_TOK
    close(layers["llm.emb"][1][0], feats[0, :n_tok].numpy())
    p = ids[0].tolist().index(-200)
    for i in range(2):
        close(layers[f"llm.{i:02d}"][1][0], out.hidden_states[i + 1][0, p:p + n_tok].numpy())
    # The span is where the features are: one position earlier or later does not match.
    got = layers["llm.00"][1][0]
    for q in (p - 1, p + 1):
        assert np.abs(got - out.hidden_states[1][0, q:q + n_tok].numpy()).max() > 0.1 * np.abs(got).max()


def test_batching_matches_single(env: dict[str, Any]) -> None:
    _, batched = run(env)
    _, single = run(env, batch_size=1)
    for name in batched:
        for sid in batched[name]:
            a, ta = batched[name][sid]
            b, tb = single[name][sid]
            np.testing.assert_array_equal(ta, tb)
            close(a, b)


def test_last_layer_raw_vs_post_norm_and_embedding(env: dict[str, Any]) -> None:
    _, post = run(env)
    man, raw = run(env, settings={"llm_last_layer": "raw", "store_embedding_layer": True})
    assert [m["name"] for m in man["extra_layers"]] == ["encoder.emb", "llm.emb"]
    for sid in post["llm.00"]:
        close(post["llm.00"][sid][0], raw["llm.00"][sid][0])
        close(post["encoder.01"][sid][0], raw["encoder.01"][sid][0])
    a, b = post["llm.01"][1][0], raw["llm.01"][1][0]
    assert a.shape == b.shape and float(np.abs(a - b).max()) > 1e-2
    rms = np.sqrt((a.astype(np.float64) ** 2).mean(axis=1))  # final RMSNorm (weight 1) applied
    np.testing.assert_allclose(rms, 1.0, rtol=2e-2)
    assert raw["llm.emb"][1][0].shape == (20, 64) and raw["encoder.emb"][1][0].shape == (100, 64)


def test_targets_subset(env: dict[str, Any]) -> None:
    man, layers = run(env, settings={"targets": ["encoder"]})
    assert sorted(layers) == ["encoder.00", "encoder.01"] and set(man["frames"]) == {"encoder"}
    _, full = run(env)
    close(layers["encoder.01"][2][0], full["encoder.01"][2][0])


def test_official_template_prompt(env: dict[str, Any]) -> None:
    """With the llama_3 conversation template the span moves behind the system turn; BOS handling is
    tokenizer_speech_token's (the template's literal <|begin_of_text|> plus the tokenizer's own)."""
    from omni_speech.conversation import conv_templates

    conv = conv_templates["llama_3"].copy()
    conv.append_message(conv.roles[0], "<speech>")
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == TEMPLATE.replace("{audio}", "<speech>")
    ad = adapter(env, key="omni-template")
    inp = ad.inputs([Clip(2, env["clips"][2])])
    ids = inp["input_ids"][0].tolist()
    bos = ad.processor.bos_token_id
    assert ids[:2] == [bos, bos] and ids.count(bos) == 2
    (start, n), = inp["spans"][0]
    assert start == ids.index(-200) > 40 and n == N_TOK
    _, layers = run(env, key="omni-template")
    assert layers["llm.01"][2][0].shape == (14, 64)  # ceil(1.37 × 10)


def test_encoder_is_the_whisper_checkpoint(env: dict[str, Any]) -> None:
    """As builder.py: after from_pretrained the encoder is rebuilt from large-v3.pt (with plain LayerNorms)."""
    ad = adapter(env)
    enc = ad.model.get_speech_encoder()
    ckpt = torch.load(env["dir"] / "models" / "speech_encoder" / "large-v3.pt", weights_only=True)
    want = {k.removeprefix("encoder."): v for k, v in ckpt["model_state_dict"].items()}
    got = enc.state_dict()
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        torch.testing.assert_close(got[k], v)
    assert type(enc.blocks[0].attn_ln) is torch.nn.LayerNorm
    assert len(ad.layers["encoder"]) == 2 and len(ad.layers["llm"]) == 2


def _copy_dir(env: dict[str, Any], name: str) -> Path:
    d = env["root"] / name
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(env["dir"], d, ignore=shutil.ignore_patterns("__pycache__"))
    return d


def test_refusals(env: dict[str, Any]) -> None:
    entry = get_entry(env["registry"], KEY)
    d = _copy_dir(env, "modified_code")
    arch = d / CODE_DIR / "omni_speech" / "model" / "omni_speech_arch.py"
    arch.write_text(arch.read_text() + "\n# edited\n")
    with pytest.raises(RemoteCodeRefusedError, match="modified"):
        load_model(entry, d, device="cpu")
    d = _copy_dir(env, "no_code")
    shutil.rmtree(d / CODE_DIR)
    with pytest.raises(RemoteCodeRefusedError, match="code is missing"):
        load_model(entry, d, device="cpu")
    other = dataclasses.replace(entry, code={**entry.code, "commit": "0" * 40})
    with pytest.raises(RemoteCodeRefusedError, match="registry pins"):
        load_model(other, env["dir"], device="cpu")
    with pytest.raises(RemoteCodeRefusedError, match="pin a 40-hex revision"):
        load_model(dataclasses.replace(entry, revision=None), env["dir"], device="cpu")
    d = _copy_dir(env, "modified_encoder")
    ckpt = d / "models" / "speech_encoder" / "large-v3.pt"
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    with pytest.raises(RemoteCodeRefusedError, match=r"speech encoder .* modified"):
        load_model(entry, d, device="cpu")
    d = _copy_dir(env, "missing_encoder")
    (d / "models" / "speech_encoder" / "large-v3.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"large-v3\.pt"):
        load_model(entry, d, device="cpu")


def test_bad_input(env: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="audio_placeholder must contain '<speech>'"):
        adapter(env, key="omni-bad-placeholder")
    # 2 s windows: sentence 3 needs 16 × 300 features, beyond tokenizer_model_max_length 2048.
    with pytest.raises(ValueError, match="tokenizer_model_max_length 2048"):
        run(env, settings={"window_s": 2})


def test_whisper_double_mel_matches_transformers(env: dict[str, Any]) -> None:
    """The whisper test double's log-mel (what the adapter feeds, as infer.py) equals transformers'
    WhisperFeatureExtractor, an independent re-implementation of openai-whisper's."""
    from transformers import WhisperFeatureExtractor

    ad = adapter(env)
    audio = env["clips"][2]
    ours = ad.mel(audio).numpy()
    ref = WhisperFeatureExtractor(feature_size=128)(audio, sampling_rate=SR, return_tensors="np")["input_features"][0]
    assert ours.shape == (N_MEL, 128) and ref.shape == (128, N_MEL)
    np.testing.assert_allclose(ours, ref.T, atol=1e-4)
