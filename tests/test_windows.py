"""Time windows: tables, sentence-locked (paper) and word-locked RSA against scipy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from hearlike import windows as win


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


def test_word_model_features_average_overlapping_frames() -> None:
    ft = frame_grid(10, 10.0)  # frames of 100 ms
    model = np.arange(20.0).reshape(10, 2)
    on = np.array([0.0, 0.15, 0.95, 2.0])
    off = np.array([0.1, 0.35, 1.2, 2.5])
    out = win.word_model_features(model=model, frame_times=ft, onsets_s=on, offsets_s=off)
    np.testing.assert_allclose(out[0], model[0])  # [0, 0.1) touches frame 0 only (half-open)
    np.testing.assert_allclose(out[1], model[1:4].mean(axis=0))
    np.testing.assert_allclose(out[2], model[9])
    assert np.all(np.isnan(out[3]))  # no frame after the sentence: NaN, not 0


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
            m[(ft[:, 0] >= on) & (ft[:, 1] <= on + 0.4)] = vecs[i]
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
