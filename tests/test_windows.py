"""Time windows: tables, sentence-locked (paper) and word-locked RSA against scipy references."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.distance import pdist

from hearlike import windows as win
from hearlike.aggregate import window_profile
from hearlike.analysis import window_job
from hearlike.io import read_tsv, save_npz_dict, sentence_key, write_tsv
from hearlike.models.extract import frame_times
from hearlike.stats import sign_flip_test


def frame_grid(n_frames: int, rate_hz: float) -> np.ndarray:
    t = np.arange(n_frames) / rate_hz
    return np.stack([t, t + 1.0 / rate_hz], axis=1)


def ref_spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b)[0])


def test_erp_table_and_sliding_windows() -> None:
    table = {w.name: (w.start_ms, w.end_ms) for w in win.ERP_WINDOWS}
    assert table == {
        "N100": (80, 150),
        "P200": (150, 250),
        "N200": (200, 300),
        "N400": (300, 500),
        "w250_500_paper": (250, 500),
        "P600": (500, 800),
    }
    assert "paper" in win.erp_windows(["w250_500_paper"])[0].label
    with pytest.raises(KeyError):
        win.erp_windows(["P300"])
    cfg = win.windows_from_config(
        erp={"N400": [300, 500], "w250_500_paper": [250, 500]},
        sliding={"length_ms": 250, "step_ms": 50, "max_ms": 800},
    )
    assert [w.name for w in cfg[:2]] == ["N400", "w250_500_paper"] and "paper" in cfg[1].label
    assert len(cfg) == 2 + 12 and cfg[-1].end_ms == 800
    sl = win.sliding_windows()
    starts = [w.start_ms for w in sl]
    assert starts == list(np.arange(0, 751, 50.0))
    assert all(w.end_ms - w.start_ms == 250 for w in sl) and sl[-1].end_ms == 1000
    assert len({w.name for w in sl}) == len(sl)
    assert len(win.sliding_windows(length_ms=100, step_ms=20, max_latency_ms=500)) == 21
    tab = win.windows_table(sl)
    assert list(tab.columns) == ["window", "start_ms", "end_ms", "label"] and len(tab) == 16


def test_interpolate_eeg_matches_numpy_and_is_nan_outside() -> None:
    rng = np.random.default_rng(0)
    eeg = rng.standard_normal((4, 100))
    times = np.array([-0.01, 0.0, 0.0137, 0.5, 0.99, 1.2])
    out = win.interpolate_eeg(eeg, 100.0, times)
    for c in range(4):
        ref = np.interp(times[1:5], np.arange(100) / 100.0, eeg[c])
        np.testing.assert_allclose(out[1:5, c], ref)
    assert np.all(np.isnan(out[[0, 5]]))


def test_sentence_locked_matches_reference_and_short_windows_are_nan() -> None:
    rng = np.random.default_rng(1)
    sfreq, rate = 500.0, 50.0
    eeg = rng.standard_normal((5, 1500))  # 3 s
    eeg[3] = 1.0  # a flat electrode: its RDM is constant → NaN, never 0
    ft = frame_grid(150, rate)
    model = rng.standard_normal((150, 8))
    names = [f"E{c}" for c in range(5)]
    windows = [*win.erp_windows(), win.Window("tiny", 0.0, 50.0, "tiny")]
    df = win.sentence_locked_window_rsa(
        eeg=eeg, sfreq=sfreq, model=model, frame_times=ft, windows=windows, channel_names=names
    )
    assert set(df.columns) >= {"window", "start_ms", "end_ms", "channel", "value", "n_items"}
    assert len(df) == len(windows) * 6
    w = win.erp_windows(["N400"])[0]
    centres = ft.mean(axis=1) * 1000
    sel = (centres >= 300) & (centres < 500)
    assert sel.sum() == 10
    x = np.stack([np.interp(ft[sel].mean(axis=1), np.arange(1500) / sfreq, eeg[c]) for c in range(5)], axis=1)
    m_rdm = pdist(model[sel], "correlation")
    got = df[df.window == w.name].set_index("channel")["value"]
    for c in (0, 1, 4):
        assert got[f"E{c}"] == pytest.approx(ref_spearman(pdist(x[:, [c]], "cityblock"), m_rdm))
    assert np.isnan(got["E3"])
    assert got["all"] == pytest.approx(ref_spearman(pdist(x, "correlation"), m_rdm))
    # 0–50 ms holds 2 frame centres at 50 Hz: fewer than 3 frames → NaN (the paper writes 0.0)
    assert df[df.window == "tiny"]["value"].isna().all()
    assert (df[df.window == "tiny"]["n_items"] == 2).all()


def test_word_model_features_take_the_frame_at_the_onset() -> None:
    """The model vector of a word is the frame containing its onset, not the mean over the word (which
    moved the model's reference half a word after the onset that the EEG windows are timed from)."""
    ft = frame_grid(10, 10.0)  # frames of 100 ms
    model = np.arange(20.0).reshape(10, 2)
    on = np.array([0.0, 0.15, 0.95, -1e-12, 2.0, 1.0])
    out = win.word_model_features(model=model, frame_times=ft, onsets_s=on)
    np.testing.assert_allclose(out[:4], model[[0, 1, 9, 0]])  # a rounding-negative onset stays in frame 0
    assert np.all(np.isnan(out[4:]))  # no frame at the onset (past the last, half-open): NaN, not 0
    # overlapping frames (25 ms every 20 ms, as the 50 Hz encoders): the one whose centre is nearest
    t = np.arange(5) * 0.02
    over = np.stack([t, t + 0.025], axis=1)
    got = win.word_model_features(model=np.arange(5.0)[:, None], frame_times=over,
                                  onsets_s=np.array([0.021, 0.024, 0.044]))
    np.testing.assert_allclose(got[:, 0], [0.0, 1.0, 2.0])  # 0.021, 0.024 lie in frames 0 and 1; 0.044 in 1, 2
    assert win.word_model_features(model=np.zeros((0, 3)), frame_times=np.zeros((0, 2)),
                                   onsets_s=np.array([0.1])).shape == (1, 3)


def test_word_eeg_features_match_explicit_sample_means() -> None:
    rng = np.random.default_rng(2)
    sfreq = 128.0
    eeg = rng.standard_normal((3, 400))  # 3.125 s
    onsets = np.array([0.0, 0.4, 1.31, 2.5, 3.0])
    windows = [*win.erp_windows(), *win.sliding_windows(max_latency_ms=600)]
    out = win.word_eeg_features(eeg=eeg, sfreq=sfreq, onsets_s=onsets, windows=windows)
    assert out.shape == (len(windows), 5, 3)
    t = np.arange(400) / sfreq
    for wi, w in enumerate(windows):
        for i, on in enumerate(onsets):
            a, b = on + w.start_ms / 1000, on + w.end_ms / 1000
            if b * sfreq > 400 + 1e-9:
                assert np.all(np.isnan(out[wi, i])), (w.name, on)
            else:
                mask = (t >= a - 1e-12) & (t < b - 1e-12)
                np.testing.assert_allclose(out[wi, i], eeg[:, mask].mean(axis=1), atol=1e-12)


def _planted_subject(rng: np.random.Generator, *, latency: tuple[float, float] = (0.3, 0.5)):
    """Whole-scalp EEG carries each word's model vector (k = C channels) in [onset + 300, onset + 500) ms."""
    sfreq, rate, n_ch = 200.0, 25.0, 6
    eeg, model, times, rows = {}, {}, {}, []
    for sid in (1, 2, 3):
        n_words = 8
        onsets = 0.1 + 0.6 * np.arange(n_words)
        dur = onsets[-1] + 0.7  # the last word's late windows run past the segment end
        ns = int(dur * sfreq)
        ft = frame_grid(int(dur * rate), rate)
        vecs = rng.standard_normal((n_words, n_ch))
        m = np.zeros((ft.shape[0], n_ch))
        x = 0.05 * rng.standard_normal((n_ch, ns))
        for i, on in enumerate(onsets):
            m[(ft[:, 1] > on) & (ft[:, 0] < on + 0.4)] = vecs[i]  # every frame the word touches
            s0, s1 = round((on + latency[0]) * sfreq), round((on + latency[1]) * sfreq)
            x[:, s0:s1] += vecs[i][:, None]
            rows.append({"sentence_id": sid, "word_index": i, "onset_s": on, "offset_s": on + 0.4})
        eeg[sid], model[sid], times[sid] = x, m, ft
    return eeg, model, times, pd.DataFrame(rows), sfreq, [f"E{c}" for c in range(n_ch)]


def test_word_locked_rsa_finds_the_planted_latency() -> None:
    eeg, model, times, words, sfreq, names = _planted_subject(np.random.default_rng(3))
    windows = win.erp_windows()
    feats = win.word_locked_features(
        eeg=eeg, sfreq=sfreq, model=model, frame_times=times, words=words, windows=windows
    )
    assert feats.eeg.shape == (len(windows), 24, 6) and feats.model.shape == (24, 6)
    df = win.window_rsa(
        eeg_features=feats.eeg, model_features=feats.model, windows=windows, channel_names=names
    )
    scalp = df[df.channel == "all"].set_index("window")
    assert scalp.loc["N400", "value"] > 0.9
    assert abs(scalp.loc["N100", "value"]) < 0.3
    assert scalp.loc["N400", "value"] == max(scalp["value"])
    # the last word of each sentence has only 0.7 s of EEG after onset: dropped from P600 (to 800 ms) only
    assert scalp.loc["P600", "n_dropped"] == 3 and scalp.loc["N400", "n_dropped"] == 0
    assert scalp.loc["P600", "n_items"] == 21


def test_window_rsa_matches_scipy_per_channel_and_methods() -> None:
    rng = np.random.default_rng(4)
    windows = win.erp_windows(["N100", "N400"])
    eeg = rng.standard_normal((2, 30, 4))
    eeg[1, 5] = np.nan  # a word whose window left the EEG
    model = rng.standard_normal((30, 5))
    names = ["Fz", "Cz", "Pz", "Oz"]
    df = win.window_rsa(eeg_features=eeg, model_features=model, windows=windows, channel_names=names)
    keep = np.delete(np.arange(30), 5)
    m_rdm = pdist(model[keep], "correlation")
    row = df[(df.window == "N400") & (df.channel == "Pz")].iloc[0]
    assert row["value"] == pytest.approx(ref_spearman(pdist(eeg[1, keep][:, [2]], "cityblock"), m_rdm))
    assert row["n_items"] == 29 and row["n_dropped"] == 1
    pear = win.window_rsa(
        eeg_features=eeg, model_features=model, windows=windows, channel_names=names, method="pearson"
    )
    prow = pear[(pear.window == "N100") & (pear.channel == "all")].iloc[0]
    ref = stats.pearsonr(pdist(eeg[0], "correlation"), pdist(model, "correlation"))[0]
    assert prow["value"] == pytest.approx(ref)

    def kendall(e: np.ndarray, m: np.ndarray) -> np.ndarray:
        return np.array([stats.kendalltau(r, m)[0] for r in e])

    kt = win.window_rsa(
        eeg_features=eeg, model_features=model, windows=windows, channel_names=names, method=kendall
    )
    krow = kt[(kt.window == "N100") & (kt.channel == "Fz")].iloc[0]
    assert krow["value"] == pytest.approx(
        stats.kendalltau(pdist(eeg[0][:, [0]], "cityblock"), pdist(model, "correlation"))[0]
    )
    # seeded subsampling of items is reproducible and respected
    a = win.window_rsa(
        eeg_features=eeg,
        model_features=model,
        windows=windows,
        channel_names=names,
        max_items=10,
        rng=np.random.default_rng(0),
    )
    b = win.window_rsa(
        eeg_features=eeg,
        model_features=model,
        windows=windows,
        channel_names=names,
        max_items=10,
        rng=np.random.default_rng(0),
    )
    pd.testing.assert_frame_equal(a, b)
    assert (a["n_items"] == 10).all()
    # one item order for all windows: N100 keeps the same words as N400 (whose item 5 is dropped) and both
    # equal scipy on the items of that order
    order = np.random.default_rng(0).permutation(30)
    for wi, name in enumerate(["N100", "N400"]):
        valid = order[np.isfinite(eeg[wi][order]).all(axis=1)]
        idx = np.sort(valid[:10])
        row = a[(a.window == name) & (a.channel == "all")].iloc[0]
        ref = ref_spearman(pdist(eeg[wi, idx], "correlation"), pdist(model[idx], "correlation"))
        assert row["value"] == pytest.approx(ref)
    # fewer than 3 items → NaN
    few = win.window_rsa(
        eeg_features=eeg[:, :2], model_features=model[:2], windows=windows, channel_names=names
    )
    assert few["value"].isna().all()


def test_chunked_electrodes_equal_unchunked() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 7))
    m = rng.standard_normal((20, 3))
    w = win.Window("w", 0.0, 1.0, "w")
    whole = win._window_rows(w, x, [m], list("abcdefg"), method="spearman", min_items=3, n_dropped=0)
    chunked = win._window_rows(
        w, x, [m], list("abcdefg"), method="spearman", min_items=3, n_dropped=0, max_elements=400
    )
    np.testing.assert_allclose([r["value"] for r in whole], [r["value"] for r in chunked])


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_layers_scored_together_equal_one_by_one(method) -> None:
    """Ranking each window's EEG RDMs once for all layers gives each layer's own result; a NaN model item
    in one layer drops that item for all layers of the call."""
    rng = np.random.default_rng(6)
    windows = win.erp_windows(["N100", "N400", "P600"])
    eeg = rng.standard_normal((3, 40, 5))
    eeg[2, :4] = np.nan
    layers = {f"llm.{k:02d}": rng.standard_normal((40, 4)) for k in range(3)}
    names = list("abcde")
    together = win.window_rsa(eeg_features=eeg, model_features=layers, windows=windows, channel_names=names,
                              method=method, max_items=25, rng=np.random.default_rng(1))
    assert list(together.columns[:2]) == ["layer", "window"]
    for layer, feats in layers.items():
        alone = win.window_rsa(eeg_features=eeg, model_features=feats, windows=windows, channel_names=names,
                               method=method, max_items=25, rng=np.random.default_rng(1))
        mine = together[together.layer == layer].drop(columns="layer").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)
    broken = dict(layers)
    broken["llm.01"] = broken["llm.01"].copy()
    broken["llm.01"][7] = np.nan
    dropped = win.window_rsa(eeg_features=eeg, model_features=broken, windows=windows, channel_names=names,
                             method=method)
    assert (dropped.loc[dropped.window == "N100", "n_items"] == 39).all()


def test_words_relative_to_sentences() -> None:
    sentences = pd.DataFrame({"sentence_id": [1, 2], "onset_s": [10.0, 20.0]})
    words = pd.DataFrame(
        {"sentence_id": [1, 2], "word_index": [0, 0], "onset_s": [10.5, 21.0], "offset_s": [10.8, 21.2]}
    )
    rel = win.words_relative_to_sentences(words, sentences)
    np.testing.assert_allclose(rel["onset_s"], [0.5, 1.0])
    np.testing.assert_allclose(rel["offset_s"], [0.8, 1.2])
    with pytest.raises(KeyError):
        win.words_relative_to_sentences(words.assign(sentence_id=[1, 3]), sentences)


def test_sentence_locked_subject_average_uses_fisher_z() -> None:
    rng = np.random.default_rng(6)
    eeg = {sid: rng.standard_normal((3, 1000)) for sid in (1, 2, 4)}
    model = {sid: rng.standard_normal((50, 5)) for sid in (1, 2, 3)}  # sentence 3 has no EEG, 4 no model
    times = {sid: frame_grid(50, 25.0) for sid in (1, 2, 3)}
    windows = win.erp_windows(["N400", "N100"])
    out = win.sentence_locked_subject_rsa(
        eeg=eeg, sfreq=500.0, model=model, frame_times=times, windows=windows, channel_names=["a", "b", "c"]
    )
    per = [
        win.sentence_locked_window_rsa(
            eeg=eeg[s],
            sfreq=500.0,
            model=model[s],
            frame_times=times[s],
            windows=windows,
            channel_names=["a", "b", "c"],
        ).set_index(["window", "channel"])["value"]
        for s in (1, 2)
    ]
    got = out.set_index(["window", "channel"])
    assert got.loc[("N400", "b"), "value"] == pytest.approx(
        np.tanh(np.mean(np.arctanh([p[("N400", "b")] for p in per])))
    )
    assert got.loc[("N400", "b"), "n_sentences"] == 2
    # N100 (80–150 ms) holds 2 frames at 25 Hz: NaN in every sentence → NaN average over 0 sentences
    assert np.isnan(got.loc[("N100", "all"), "value"]) and got.loc[("N100", "all"), "n_sentences"] == 0


def test_layer_features_equal_single_layer_features() -> None:
    """The EEG items computed once for several layers equal those of each single-layer call, and so do
    each layer's model items."""
    eeg, model, times, words, sfreq, _ = _planted_subject(np.random.default_rng(7))
    other = {sid: m[:, ::-1] * 2.0 for sid, m in model.items()}
    windows = win.erp_windows()
    eeg_items, models, items = win.word_locked_layer_features(
        eeg=eeg, sfreq=sfreq, layers={"a": model, "b": other}, frame_times=times, words=words, windows=windows
    )
    for name, feats in (("a", model), ("b", other)):
        single = win.word_locked_features(eeg=eeg, sfreq=sfreq, model=feats, frame_times=times, words=words,
                                          windows=windows)
        np.testing.assert_array_equal(single.eeg, eeg_items)
        np.testing.assert_array_equal(single.model, models[name])
        pd.testing.assert_frame_equal(single.items, items)


# --------------------------------------------------------------------------------------------------
# a realistic word-locked layout, scored by the workflow's own step function (analysis.window_job)

#: the frame grids of the real models (resources/models.yaml): 50 Hz encoders with 25 ms frames, an 8.33 Hz LM
GRIDS = {"encoder": (50.0, 0.025), "llm": (25.0 / 3.0, 0.12)}
#: config.yaml's windows section (sliding 250 ms, step 50 ms, up to 800 ms)
WINDOWS_CFG = {
    "lock": "word",
    "metrics": ["rsa_spearman"],
    "max_items": 300,
    "null_draws": 1,
    "erp": {"N100": [80, 150], "P200": [150, 250], "N200": [200, 300], "N400": [300, 500],
            "w250_500_paper": [250, 500], "P600": [500, 800]},
    "sliding": {"length_ms": 250, "step_ms": 50, "max_ms": 800},
}  # fmt: skip
SFREQ, POST_S, N_FEATURES = 128.0, 1.0, 6


@dataclass
class Speech:
    """Sentences and words on the stimulus clock, frame grids per (timebase, sentence) and model tracks
    per (layer, sentence) in s after sentence onset."""

    sentences: pd.DataFrame
    words: pd.DataFrame
    times: dict[tuple[str, int], np.ndarray]
    tracks: dict[tuple[str, int], np.ndarray]


def speech(rng: np.random.Generator, *, n_sentences: int, layers: Sequence[str]) -> Speech:
    """Words of 0.15–0.6 s (lognormal, median 0.24 s) with short pauses (~3 words/s), 8–13 per sentence;
    model tracks smooth at the phoneme scale (Gaussian, σ = 40 ms) and not word-shaped, on the models'
    real frame grids (:func:`hearlike.models.extract.frame_times`)."""
    sent_rows, word_rows, clock = [], [], 3.0
    times: dict[tuple[str, int], np.ndarray] = {}
    tracks: dict[tuple[str, int], np.ndarray] = {}
    for sid in range(1, n_sentences + 1):
        n_words = int(rng.integers(8, 14))
        dur = np.clip(rng.lognormal(np.log(0.24), 0.35, n_words), 0.15, 0.6)
        on = 0.05 + np.concatenate([[0.0], np.cumsum(dur + rng.exponential(0.07, n_words))[:-1]])
        length = float(on[-1] + dur[-1] + 0.05)
        sent_rows.append({"sentence_id": sid, "onset_s": clock, "offset_s": clock + length})
        word_rows += [
            {"sentence_id": sid, "word_index": i, "onset_s": clock + on[i], "offset_s": clock + on[i] + dur[i]}
            for i in range(n_words)
        ]
        for tb, (rate, frame_s) in GRIDS.items():
            n = int(np.ceil(length * rate)) + 1
            times[tb, sid] = frame_times(n, rate_hz=rate, frame_length_s=frame_s, offset_s=0.0, end_s=length)[1]
            for layer in (name for name in layers if name.startswith(tb + ".")):
                x = rng.standard_normal((times[tb, sid].shape[0], N_FEATURES))
                tracks[layer, sid] = gaussian_filter1d(x, 0.04 * rate, axis=0, mode="nearest")
        clock += length + 2.0
    return Speech(pd.DataFrame(sent_rows), pd.DataFrame(word_rows), times, tracks)


def _hann(x: np.ndarray, seconds: float) -> np.ndarray:
    w = np.hanning(max(3, round(seconds * SFREQ)))
    return np.apply_along_axis(lambda c: np.convolve(c, w / w.sum(), mode="same"), -1, x)


def planted_eeg(
    rng: np.random.Generator, sp: Speech, *, layer: str, latency_s: float, mode: str, n_ch: int = 8
) -> dict[int, np.ndarray]:
    """EEG (C, sentence + ``POST_S``) per sentence = random mixing of ``layer``'s model + noise at 0 dB.

    ``mode="onset"``: each word's frame at its onset (taken with the function under test), as an impulse
    ``latency_s`` after the onset smoothed into a 250 ms ERP-like bump. ``mode="frames"`` (the demo's
    generator): every frame, delayed by ``latency_s``, 50 ms Hann smoothing — the case where the old
    whole-word model mean put the peak half a word late.
    """
    tb = layer.split(".")[0]
    mix = rng.standard_normal((n_ch, N_FEATURES))
    eeg = {}
    for r in sp.sentences.itertuples():
        n = round((r.offset_s - r.onset_s + POST_S) * SFREQ)
        t = np.arange(n) / SFREQ
        ft, m = sp.times[tb, r.sentence_id], sp.tracks[layer, r.sentence_id]
        src = np.zeros((N_FEATURES, n))
        if mode == "onset":
            on = sp.words.loc[sp.words.sentence_id == r.sentence_id, "onset_s"].to_numpy() - r.onset_s
            vec = win.word_model_features(model=m, frame_times=ft, onsets_s=on)
            np.add.at(src.T, np.searchsorted(t, on + latency_s), vec)
            src = _hann(src, 0.25)
        else:
            for f, (a, b) in enumerate(np.searchsorted(t, ft + latency_s)):
                src[:, a:b] = m[f][:, None]
            src = _hann(src, 0.05)
        signal = mix @ src
        noise = _hann(rng.standard_normal((n_ch, n)), 0.03)
        eeg[r.sentence_id] = signal + noise * signal.std() / noise.std()
    return eeg


def run_window_job(
    tmp: Path, sp: Speech, eeg: Mapping[int, np.ndarray], *, model: str, layers: Sequence[str],
    subject: str = "01", windows: Mapping[str, object] = WINDOWS_CFG, skip_sentences: Sequence[int] = (),
) -> pd.DataFrame:
    """Write the step's inputs (segments with ``.post``, features with ``.pooled``/``.times``, words,
    sentences) as the workflow does and run :func:`hearlike.analysis.window_job` on them."""
    seg = {}
    for r in sp.sentences.itertuples():
        n = round((r.offset_s - r.onset_s) * SFREQ)
        seg[sentence_key(r.sentence_id)] = eeg[r.sentence_id][:, :n]
        seg[sentence_key(r.sentence_id) + ".post"] = eeg[r.sentence_id][:, n:]
    n_ch = next(iter(eeg.values())).shape[0]
    meta = {"sfreq": SFREQ, "ch_names": [f"E{c}" for c in range(n_ch)], "sentence_ids": sorted(eeg)}
    save_npz_dict(tmp / f"sub-{subject}_segments.npz", seg, meta=meta)
    feats = {}
    for layer in layers:
        tb = layer.split(".")[0]
        for sid in sp.sentences.sentence_id:
            if sid not in skip_sentences:
                feats[f"{layer}/{sentence_key(sid)}.pooled"] = sp.tracks[layer, sid].astype(np.float32)
                feats[f"{layer}/{sentence_key(sid)}"] = sp.tracks[layer, sid].astype(np.float32)  # sentence lock
                feats[f"{tb}/{sentence_key(sid)}.times"] = sp.times[tb, sid]
    save_npz_dict(tmp / f"{model}.npz", feats, meta={"layers": list(layers)})
    write_tsv(sp.words, tmp / "words.tsv")
    write_tsv(sp.sentences, tmp / "sentences.tsv")
    return window_job(model=model, subject=subject, segments=tmp / f"sub-{subject}_segments.npz",
                      features=tmp / f"{model}.npz", words=tmp / "words.tsv", sentences=tmp / "sentences.tsv",
                      windows=windows, settings={}, seed=7, out=tmp / f"{model}_sub-{subject}.tsv")


def best_sliding_centre(table: pd.DataFrame, layer: str) -> float:
    """Centre (ms) of the whole-scalp sliding window with the highest value for one layer."""
    sl = table[(table.channel == "all") & (table.layer == layer) & table.window.str.startswith("sl")]
    best = sl.loc[sl["value"].idxmax()]
    return float(best["start_ms"] + best["end_ms"]) / 2


@pytest.mark.parametrize(("mode", "latency_ms"), [("onset", 350), ("onset", 150), ("frames", 350)])
def test_window_job_finds_a_planted_latency_after_word_onset(tmp_path: Path, mode: str, latency_ms: int) -> None:
    """A response planted ``latency_ms`` after the word onset (to the model state at the onset) peaks in
    the sliding window centred there (±50 ms, one step); the old whole-word model mean peaked at
    425–475 ms for a 350 ms response. N400 beats P600 for the 350 ms response."""
    layers = ["encoder.00", "encoder.01"]
    sp = speech(np.random.default_rng(11), n_sentences=40, layers=layers)
    dur = sp.words.offset_s - sp.words.onset_s
    speaking = float((sp.sentences.offset_s - sp.sentences.onset_s).sum())
    assert dur.min() > 0.15 - 1e-9 and dur.max() < 0.6 + 1e-9 and 0.22 < dur.median() < 0.26
    assert 2.7 < len(sp.words) / speaking < 3.5  # words per second of speech
    eeg = planted_eeg(np.random.default_rng(12), sp, layer="encoder.00", latency_s=latency_ms / 1e3, mode=mode)
    table = run_window_job(tmp_path, sp, eeg, model="m", layers=layers)
    assert abs(best_sliding_centre(table, "encoder.00") - latency_ms) <= 50
    scalp = table[(table.channel == "all") & (table.layer == "encoder.00")].set_index("window")["value"]
    if latency_ms == 350:
        assert scalp["N400"] > scalp["P600"] and scalp["N400"] > scalp["N100"]
    else:
        assert scalp["N100"] > scalp["N400"] > scalp["P600"] - 0.05
    # an unrelated layer carries nothing at any latency
    other = table[(table.channel == "all") & (table.layer == "encoder.01")]["value"]
    assert other.abs().max() < 0.1


def test_select_items_is_one_subset_without_refill() -> None:
    """The subset is drawn from the EEG validity and the rng only; a word a model lacks is not replaced."""
    eeg_ok = np.ones((2, 50), dtype=bool)
    eeg_ok[1, :5] = False  # a late window: the first words have no EEG there
    full = win.select_items(eeg_ok, np.ones(50, bool), max_items=20, rng=np.random.default_rng(3))
    order = np.random.default_rng(3).permutation(50)
    np.testing.assert_array_equal(full[0], np.sort(order[:20]))
    np.testing.assert_array_equal(full[1], np.sort(order[order >= 5][:20]))
    model_ok = np.ones(50, bool)
    model_ok[full[0][:3]] = False
    holed = win.select_items(eeg_ok, model_ok, max_items=20, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(holed[0], full[0][3:])  # three fewer words, no substitutes
    assert win.item_digest(holed[0]) != win.item_digest(full[0])
    with pytest.raises(ValueError):
        win.select_items(eeg_ok, model_ok, max_items=20, rng=None)


def test_window_job_scores_every_model_on_one_word_subset_per_subject(tmp_path: Path) -> None:
    """Word-locked windows draw one seeded word subset per subject: two models with different layers and
    timebases, and two metrics, score the same words in every window; a model lacking a sentence loses
    its words from that subset without substitutes; another subject gets another subset."""
    layers = ["encoder.00", "encoder.01", "llm.00", "llm.01"]
    sp = speech(np.random.default_rng(21), n_sentences=16, layers=layers)
    eeg = planted_eeg(np.random.default_rng(22), sp, layer="encoder.00", latency_s=0.3, mode="onset", n_ch=4)
    cfg = {**WINDOWS_CFG, "metrics": ["rsa_spearman", "rsa_pearson"], "max_items": 60,
           "erp": {"N400": [300, 500], "P600": [500, 800]}, "sliding": None}  # fmt: skip
    a = run_window_job(tmp_path, sp, eeg, model="a", layers=["encoder.00", "encoder.01", "llm.00"], windows=cfg)
    b = run_window_job(tmp_path, sp, eeg, model="b", layers=["llm.01"], windows=cfg)
    holed = run_window_job(tmp_path, sp, eeg, model="c", layers=["encoder.00"], windows=cfg, skip_sentences=[3])
    other = run_window_job(tmp_path, sp, eeg, model="a", layers=["encoder.00"], windows=cfg, subject="02")

    def per_window(t: pd.DataFrame) -> pd.DataFrame:
        sets = t.groupby("window")[["item_set", "n_items", "n_dropped"]].nunique()
        assert (sets == 1).all().all(), "one word set per window across layers, timebases and metrics"
        return t.groupby("window")[["item_set", "n_items", "n_dropped"]].first()

    pa, pb, ph, po = per_window(a), per_window(b), per_window(holed), per_window(other)
    assert len(sp.words) > 60 and (pa["n_items"] == 60).all()
    pd.testing.assert_frame_equal(pa, pb)
    n3 = int((sp.words.sentence_id == 3).sum())
    assert (ph["n_dropped"] == pa["n_dropped"] + n3).all()
    lost = pa["n_items"] - ph["n_items"]
    assert (lost > 0).all() and (lost <= n3).all()  # fewer words, not other words
    assert (ph["item_set"] != pa["item_set"]).all()
    assert (po["item_set"] != pa["item_set"]).all() and (po["n_items"] == 60).all()


# --------------------------------------------------------------------------------------------------
# the window null: EEG-side sentence mismatch, and the tests across subjects built on it


def test_draw_partners_and_null_items_cut_the_partner_at_the_own_word_times() -> None:
    """A partner has at least as many samples; the longest sentence has none; the null items of a sentence
    are its own words cut from the partner's EEG cropped to its length, NaN without a partner."""
    rng = np.random.default_rng(40)
    lengths = {1: 300, 2: 500, 3: 400, 4: 500, 5: 650}
    eeg = {sid: rng.standard_normal((3, n)) for sid, n in lengths.items()}
    a = win.draw_partners(lengths, rng=np.random.default_rng(1))
    assert a == win.draw_partners(lengths, rng=np.random.default_rng(1))
    assert a[5] is None and all(lengths[p] >= lengths[s] and p != s for s, p in a.items() if p is not None)
    draws = [win.draw_partners(lengths, rng=np.random.default_rng(k)) for k in range(20)]
    assert len({d[1] for d in draws}) > 1  # seeded, but a real draw
    words = pd.DataFrame({"sentence_id": [1, 1, 3, 5], "onset_s": [0.1, 0.5, 0.2, 0.3], "offset_s": 0.0})
    windows = win.erp_windows(["N100", "N400"])
    null = win.word_null_eeg(eeg=eeg, partners=a, sfreq=200.0, words=words, windows=windows)
    own, _, _ = win.word_locked_layer_features(eeg=eeg, sfreq=200.0, layers={}, frame_times={}, words=words,
                                               windows=windows)
    assert null.shape == own.shape == (2, 4, 3)
    ref = win.word_eeg_features(eeg=eeg[a[1]][:, :300], sfreq=200.0, onsets_s=np.array([0.1, 0.5]),
                                windows=windows)
    np.testing.assert_array_equal(null[:, :2], ref)
    assert np.isnan(null[:, 3]).all() and np.isfinite(null[:, :3]).all()
    with pytest.raises(ValueError):
        win.partner_eeg(eeg, {1: 2, 2: 1})  # sentence 1 is shorter than 2


def _pink(rng: np.random.Generator, n_ch: int, n: int) -> np.ndarray:
    """Unit-variance 1/f noise (the demo's background): smooth, dominated by slow components."""
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal((n_ch, n)), axis=1) / np.sqrt(f), n=n, axis=1)
    return x / x.std(axis=1, keepdims=True)


def smooth_speech(seed: int, *, n_sentences: int, layer: str = "encoder.00") -> Speech:
    """:func:`speech` with smooth model states: σ = 300 ms tracks plus a per-sentence offset (LM-like states
    that drift slowly and share the sentence's context)."""
    sp = speech(np.random.default_rng(seed), n_sentences=n_sentences, layers=[layer])
    rng = np.random.default_rng(seed + 1)
    rate = GRIDS[layer.split(".")[0]][0]
    for sid in sp.sentences.sentence_id:
        x = gaussian_filter1d(rng.standard_normal(sp.tracks[layer, sid].shape), 0.3 * rate, axis=0)
        sp.tracks[layer, sid] = x / x.std() + 0.5 * rng.standard_normal(N_FEATURES)
    return sp


def h0_eeg(rng: np.random.Generator, sp: Speech, *, n_ch: int = 8) -> dict[int, np.ndarray]:
    """EEG independent of the model: per sentence (segment + ``POST_S``) the middle third of a 1/f recording
    three times as long, so segments are stationary crops and different sentences' EEG are independent (the
    mismatch null's assumption; slow drift shared by neighbouring sentences is not simulated here)."""
    out = {}
    for r in sp.sentences.itertuples():
        n = round((r.offset_s - r.onset_s + POST_S) * SFREQ)
        out[r.sentence_id] = _pink(rng, n_ch, 3 * n)[:, n : 2 * n]
    return out


NULL_CFG = {**WINDOWS_CFG, "null_draws": 5, "sliding": None, "max_items": None,
            "erp": {"N100": [80, 150], "w250_500_paper": [250, 500]}}  # fmt: skip


def z_above_null(table: pd.DataFrame, window: str, layer: str = "encoder.00") -> tuple[float, float]:
    """Whole-scalp value and value − null (Fisher z) of one window."""
    row = table[(table.channel == "all") & (table.window == window) & (table.layer == layer)].iloc[0]
    return float(row["value"]), float(np.arctanh(row["value"]) - np.arctanh(row["null_mean"]))


def test_window_null_removes_the_overlap_inflation_under_h0(tmp_path: Path) -> None:
    """EEG independent of the model (1/f EEG), smooth model states, realistic words: the whole-scalp RSA of
    the 250–500 ms window is ≈ +0.02 (words close in time share EEG and model state), but value − null is
    centred on 0 across subjects."""
    sp = smooth_speech(50, n_sentences=30)
    values, diffs = [], []
    for s in range(8):
        eeg = h0_eeg(np.random.default_rng(500 + s), sp)
        table = run_window_job(tmp_path, sp, eeg, model="m", layers=["encoder.00"], subject=f"{s:02d}",
                               windows={**NULL_CFG, "erp": {"w250_500_paper": [250, 500]}})
        v, d = z_above_null(table, "w250_500_paper")
        values.append(v)
        diffs.append(d)
    values, diffs = np.array(values), np.array(diffs)
    se = diffs.std(ddof=1) / np.sqrt(diffs.size)
    assert values.mean() > 0.005 and values.mean() > 4 * values.std(ddof=1) / np.sqrt(values.size)
    assert abs(diffs.mean()) < 2 * se, (values.mean(), diffs.mean(), se)


def test_window_null_keeps_a_planted_response(tmp_path: Path) -> None:
    """A response planted 350 ms after word onset: value − null is clearly positive in the paper's window
    and larger there than in N100; the longest sentence's words leave value and null alike."""
    sp = speech(np.random.default_rng(11), n_sentences=30, layers=["encoder.00"])
    eeg = planted_eeg(np.random.default_rng(12), sp, layer="encoder.00", latency_s=0.35, mode="onset")
    table = run_window_job(tmp_path, sp, eeg, model="m", layers=["encoder.00"], windows=NULL_CFG)
    _, late = z_above_null(table, "w250_500_paper")
    _, early = z_above_null(table, "N100")
    assert late > 0.1 and late > early + 0.05
    longest = int(sp.sentences.assign(d=sp.sentences.offset_s - sp.sentences.onset_s).sort_values("d")
                  .sentence_id.iloc[-1])  # fmt: skip
    n_longest = int((sp.words.sentence_id == longest).sum())
    assert (table["n_no_partner"] == n_longest).all() and (table["n_null"] == 5).all()
    assert (table["n_items"] == len(sp.words) - table["n_dropped"]).all()
    assert (table["n_dropped"] >= n_longest).all()


def test_window_null_partners_are_shared_by_models_and_the_sentence_lock_has_one(tmp_path: Path) -> None:
    """The partners depend on the subject only: a layer scored with other layers, or in another model,
    gets the same null; the sentence lock gets a null too, without the sentence that has no partner."""
    layers = ["encoder.00", "llm.00"]
    sp = speech(np.random.default_rng(21), n_sentences=12, layers=layers)
    eeg = planted_eeg(np.random.default_rng(22), sp, layer="encoder.00", latency_s=0.3, mode="onset", n_ch=4)
    cfg = {**NULL_CFG, "null_draws": 2}
    both = run_window_job(tmp_path, sp, eeg, model="a", layers=layers, windows=cfg)
    alone = run_window_job(tmp_path, sp, eeg, model="b", layers=["encoder.00"], windows=cfg)
    cols = ["window", "channel", "value", "null_mean", "item_set"]
    pd.testing.assert_frame_equal(both.loc[both.layer == "encoder.00", cols].reset_index(drop=True),
                                  alone[cols].reset_index(drop=True))
    other = run_window_job(tmp_path, sp, eeg, model="b", layers=["encoder.00"], windows=cfg, subject="02")
    assert not np.allclose(other["null_mean"], alone["null_mean"])  # another subject, other partners
    sent = run_window_job(tmp_path, sp, eeg, model="a", layers=layers, windows={**cfg, "lock": "sentence"})
    assert {"value", "null_mean", "n_sentences", "n_no_partner"} <= set(sent.columns)
    scalp = sent[(sent.channel == "all") & (sent.window == "w250_500_paper")].set_index("layer")
    assert (scalp["n_no_partner"] == 1).all()
    assert np.isfinite(scalp.loc["encoder.00", "null_mean"]) and scalp.loc["encoder.00", "n_sentences"] == 11
    # 250–500 ms holds 2 frames at 8.33 Hz: NaN value and null (< 3 frames), never 0
    assert np.isnan(scalp.loc["llm.00", ["value", "null_mean"]].astype(float)).all()


STATS = {"n_signflip": 10000, "n_bootstrap": 500, "ci_level": 0.95, "min_sentences": 3}
ERP = {"N100": [80, 150], "P200": [150, 250], "w250_500_paper": [250, 500]}


def subject_window_tables(tmp: Path, *, n_subjects: int = 6) -> tuple[list[Path], pd.DataFrame]:
    """Per-subject window tables as window_job writes them (two channels + whole scalp, two layers)."""
    rng = np.random.default_rng(60)
    rows = []
    for s in range(n_subjects):
        for layer in ("encoder.00", "encoder.01"):
            for w, (a, b) in ERP.items():
                for ch in ("Cz", "Pz", "all"):
                    null = 0.02 + 0.005 * rng.standard_normal()
                    lift = 0.03 if (w == "w250_500_paper" and layer == "encoder.00") else 0.0
                    rows.append(dict(subject=f"{s:02d}", model="m", layer=layer, metric="rsa_spearman",
                                     lock="word", window=w, start_ms=a, end_ms=b, channel=ch,
                                     value=null + lift + 0.01 * rng.standard_normal(), null_mean=null))
    full = pd.DataFrame(rows)
    paths = []
    for s, g in full.groupby("subject"):
        paths.append(tmp / f"sub-{s}.tsv")
        write_tsv(g, paths[-1])
    return paths, full


def test_window_profile_tests_value_minus_null_and_contrasts_windows(tmp_path: Path) -> None:
    """p_signflip is the sign-flip test of z(value) − z(null) across subjects (not of the value against 0);
    the contrast's diff is the mean over subjects of the difference of (value − null) between windows."""
    paths, full = subject_window_tables(tmp_path)
    out = {k: tmp_path / f"{k}.tsv" for k in ("profile", "topo", "contrast")}
    window_profile(tables=paths, statistics=STATS, seed=3, out_profile=out["profile"],
                   out_topography=out["topo"], out_contrast=out["contrast"], erp=ERP)
    prof = read_tsv(out["profile"])
    assert {"mean", "ci_low", "ci_high", "above_null", "n_subjects", "p_signflip", "q_fdr"} <= set(prof.columns)
    scalp = full[full.channel == "all"].assign(d=lambda t: np.arctanh(t.value) - np.arctanh(t.null_mean))
    for (layer, w), g in scalp.groupby(["layer", "window"]):
        row = prof[(prof.layer == layer) & (prof.window == w)].iloc[0]
        d = g.sort_values("subject")["d"].to_numpy()
        assert row["above_null"] == pytest.approx(d.mean())
        assert row["p_signflip"] == pytest.approx(sign_flip_test(d, alternative="greater").p_value)  # exact: 2^6
        assert row["mean"] == pytest.approx(np.tanh(np.arctanh(g.value).mean()))
    # every value is above 0, only the planted window is above its null
    assert prof.loc[(prof.layer == "encoder.00") & (prof.window == "w250_500_paper"), "p_signflip"].item() < 0.05
    assert (prof.loc[(prof.window != "w250_500_paper"), "p_signflip"] > 0.05).sum() >= 3

    con = read_tsv(out["contrast"])
    assert list(con.columns) == ["model", "layer", "metric", "lock", "window_a", "window_b", "diff", "ci_low",
                                 "ci_high", "n_subjects", "p_signflip", "q_fdr", "reason"]
    assert len(con) == 4 and set(con.window_b) == {"N100", "P200"}
    for r in con.itertuples():
        da = scalp[(scalp.layer == r.layer) & (scalp.window == r.window_a)].sort_values("subject")["d"].to_numpy()
        db = scalp[(scalp.layer == r.layer) & (scalp.window == r.window_b)].sort_values("subject")["d"].to_numpy()
        assert r.diff == pytest.approx(np.mean(da - db))
        assert r.p_signflip == pytest.approx(sign_flip_test(da - db, alternative="greater").p_value)
        assert r.n_subjects == 6
    topo = read_tsv(out["topo"])
    cz = full[(full.channel == "Cz") & (full.layer == "encoder.01") & (full.window == "N100")]
    got = topo[(topo.channel == "Cz") & (topo.layer == "encoder.01") & (topo.window == "N100")].iloc[0]
    assert got["above_null"] == pytest.approx(np.mean(np.arctanh(cz.value) - np.arctanh(cz.null_mean)))


def test_window_profile_without_null_or_erp_windows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No null → p NaN (never a test against 0); a contrast window missing from windows.erp → a reason row
    and a WARNING, with the full header."""
    paths, _ = subject_window_tables(tmp_path, n_subjects=4)
    for p in paths:
        write_tsv(read_tsv(p, dtype={"subject": str}).assign(null_mean=np.nan), p)
    out = {k: tmp_path / f"{k}.tsv" for k in ("profile", "topo", "contrast")}
    with caplog.at_level("WARNING"):
        window_profile(tables=paths, statistics=STATS, seed=3, out_profile=out["profile"],
                       out_topography=out["topo"], out_contrast=out["contrast"],
                       erp={k: v for k, v in ERP.items() if k != "P200"})
    prof = read_tsv(out["profile"])
    assert prof["p_signflip"].isna().all() and prof["q_fdr"].isna().all() and prof["mean"].notna().all()
    con = read_tsv(out["contrast"])
    assert len(con.columns) == 13
    missing = con[con.window_b == "P200"]
    assert len(missing) == 1 and "P200" in missing["reason"].item() and np.isnan(missing["diff"].item())
    assert con.loc[con.window_b == "N100", "p_signflip"].isna().all()  # no null: nothing to test
    assert any("P200" in r.message for r in caplog.records if r.levelname == "WARNING")
