"""Figures F1–F9 drawn from small synthetic tidy tables: what each figure shows, not just that it runs."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import FillBetweenPolyCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from scipy.stats import spearmanr

from hearlike import figures as F

MODELS = {"whisper": 16, "qwen2audio": 40, "salmonn": 24}
METRICS = {
    "rsa_spearman": "geometric",
    "cka_linear": "geometric",
    "dcor2": "dependence",
    "hsic_rbf": "dependence",
}
PEAK_DEPTH = 0.5


# ------------------------------------------------------------------------------------------------ helpers


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def visible_axes(fig: Figure) -> list[Axes]:
    return [ax for ax in fig.get_axes() if ax.get_visible()]


def by_gid(fig: Figure, prefix: str) -> list:
    return [a for a in fig.findobj(lambda a: str(a.get_gid() or "").startswith(prefix))]


def axes_by_gid(fig: Figure, gid: str) -> Axes:
    hits = [ax for ax in fig.get_axes() if ax.get_gid() == gid]
    assert len(hits) == 1, gid
    return hits[0]


# ------------------------------------------------------------------------------------------------ tables


@pytest.fixture(scope="module")
def layer_profile() -> pd.DataFrame:
    """Profiles peaking at relative depth 0.5 for all models (16, 24 and 40 layers), with NaN and a hole."""
    rows = []
    for model, n in MODELS.items():
        for li in range(n):
            depth = li / (n - 1)
            for metric, family in METRICS.items():
                mean = 0.3 - (depth - PEAK_DEPTH) ** 2
                rows.append(
                    {
                        "model": model,
                        "layer": f"encoder.{li:02d}",
                        "layer_index": li,
                        "relative_depth": depth,
                        "metric": metric,
                        "family": family,
                        "mean": np.nan if (model == "salmonn" and li in (3, 4)) else mean,
                        "ci_low": mean - 0.05,
                        "ci_high": mean + 0.05,
                        "n_subjects": 5,
                        "p_signflip": 0.01,
                        "q_fdr": 0.01 if li % 2 == 0 else 0.2,
                    }
                )
    df = pd.DataFrame(rows)
    # whisper layer 8 absent from the table altogether: must still be a gap, not a bridged segment
    return df[~((df["model"] == "whisper") & (df["layer_index"] == 8))].reset_index(drop=True)


@pytest.fixture(scope="module")
def model_ranking() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for metric in METRICS:
        scores = dict(zip(MODELS, rng.uniform(0.05, 0.3, len(MODELS)), strict=True))
        if metric == "hsic_rbf":
            scores["salmonn"] = np.nan
        order = sorted(MODELS, key=lambda m: -np.nan_to_num(scores[m], nan=-1))
        for model in MODELS:
            rows.append(
                {
                    "model": model,
                    "metric": metric,
                    "rank": float(order.index(model) + 1) if np.isfinite(scores[model]) else np.nan,
                    "best_layer": f"encoder.{order.index(model) + 3:02d}",
                    "score": scores[model],
                    "rank_mean_over_layers": 2.0,
                    "score_mean_over_layers": 0.1,
                    "rank_stability": 0.8,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def metric_agreement() -> pd.DataFrame:
    names = list(METRICS)
    rows = [
        {"metric_a": a, "metric_b": b, "spearman": 0.1 * (i + j), "kendall": 0.05 * (i + j)}
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if j > i
    ]
    rows.append({"metric_a": "kendall_w", "metric_b": np.nan, "spearman": np.nan, "kendall": 0.62})
    return pd.DataFrame(rows)


ERP = [("N100", 80, 150), ("P200", 150, 250), ("P300", 250, 500), ("N400", 300, 500), ("P600", 500, 800)]


@pytest.fixture(scope="module")
def window_profile() -> pd.DataFrame:
    rows = []
    for model in ("whisper", "qwen2audio"):
        for layer, gain in (("encoder.02", 0.1), ("encoder.06", 0.2)):
            for lock in ("sentence", "word"):
                for metric in ("rsa_spearman", "cka_linear"):
                    base = {"model": model, "layer": layer, "metric": metric, "lock": lock, "n_subjects": 5}
                    for start in range(0, 1000, 50):
                        mean = gain * np.exp(-(((start + 125 - 375) / 150) ** 2))
                        if start == 600:
                            mean = np.nan
                        rows.append(
                            base
                            | {
                                "window": f"sw{start:04d}",
                                "start_ms": start,
                                "end_ms": start + 250,
                                "mean": mean,
                                "ci_low": mean - 0.02,
                                "ci_high": mean + 0.02,
                            }
                        )
                    for name, a, b in ERP:
                        rows.append(
                            base
                            | {
                                "window": name,
                                "start_ms": a,
                                "end_ms": b,
                                "mean": 0.1,
                                "ci_low": 0.0,
                                "ci_high": 0.2,
                            }
                        )
    return pd.DataFrame(rows)


def topo_table(
    montage: str, channels: list, windows: tuple[str, ...] = ("N100", "N400", "P600")
) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = []
    for window in windows:
        for ch in channels:
            rows.append(
                {
                    "model": "whisper",
                    "layer": "encoder.05",
                    "metric": "rsa_spearman",
                    "window": window,
                    "channel": ch,
                }
                | {"mean": rng.normal(0.0, 0.1)}
            )
        rows.append(
            {
                "model": "whisper",
                "layer": "encoder.05",
                "metric": "rsa_spearman",
                "window": window,
                "channel": "all",
            }
            | {"mean": 5.0}  # whole-scalp row: must neither be drawn nor set the colour limits
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def prosody_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    pg, ps = [], []
    for metric, family in METRICS.items():
        for group in (
            "other",
            "negative",
        ):  # "other" first on purpose: the figure must still put negative first
            for model in ("whisper", "qwen2audio"):
                pg.append(
                    {"model": model, "layer": "encoder.05", "metric": metric, "family": family}
                    | {"group": group, "mean": rng.normal(), "n": 12}
                )
            for s in range(7):
                ps.append(
                    {"subject": f"{s + 1:02d}", "metric": metric, "group": group, "value": rng.normal()}
                )
    ps.append({"subject": "07", "metric": "dcor2", "group": "negative", "value": np.nan})
    return pd.DataFrame(pg), pd.DataFrame(ps)


@pytest.fixture(scope="module")
def tnc_table() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 40
    return pd.DataFrame(
        {
            "sentence_id": np.arange(1, n + 1),
            "provisional_label": np.where(np.arange(n) < 15, "negative", "other"),
            "c_acoustic": rng.uniform(size=n),
            "c_eeg": rng.uniform(size=n),
            "c_model": rng.uniform(size=n),
            "tnc_label": rng.uniform(size=n),
            "tnc_overlap": rng.uniform(0, 0.5, size=n),
            "group": ["negative"] * 10 + [None] * 12 + ["other"] * 18,
        }
    )


@pytest.fixture(scope="module")
def metric_rows() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 400
    df = pd.DataFrame(
        {
            "value": rng.normal(0.1, 0.05, n),
            "null_mean": 0.0,
            "null_sd": 0.05,
            "p_shift": rng.uniform(size=n),
            "p_mismatch": rng.uniform(size=n),
            "p_frameperm_codefaithful": rng.beta(0.3, 6.0, size=n),
        }
    )
    df.loc[:9, "p_mismatch"] = np.nan
    df.loc[:4, "null_sd"] = 0.0  # degenerate null: z undefined, must be dropped
    return df


# ------------------------------------------------------------------------------------------------ general


def test_import_does_not_load_pyplot() -> None:
    code = "import sys, hearlike.figures; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_styles_stable_and_distinct() -> None:
    names = [f"m{i:02d}" for i in range(12)]
    styles = F.model_styles(reversed(names))
    assert styles == F.model_styles(names)
    assert len({(s["color"], s["linestyle"]) for s in styles.values()}) == 12
    assert all(s["color"] in F.OKABE_ITO for s in styles.values())


def test_png_written_deterministic_and_dpi(tmp_path: Path, layer_profile: pd.DataFrame) -> None:
    a = F.plot_layer_profiles(layer_profile=layer_profile, out=tmp_path / "sub" / "a.png", dpi=50)
    b = F.plot_layer_profiles(layer_profile=layer_profile, out=tmp_path / "b.png", dpi=50)
    c = F.plot_layer_profiles(layer_profile=layer_profile, out=tmp_path / "c.png", dpi=100)
    assert a == tmp_path / "sub" / "a.png" and a.is_file()
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size > 5_000
    wa, ha = png_size(a)
    wc, hc = png_size(c)
    assert wc == pytest.approx(2 * wa, abs=2) and hc == pytest.approx(2 * ha, abs=2)
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


# ------------------------------------------------------------------------------------------------ F1


def test_layer_profiles_lines_gaps_and_markers(layer_profile: pd.DataFrame) -> None:
    fig = F.layer_profiles_figure(layer_profile=layer_profile, planted={"qwen2audio": "encoder.10"})
    assert len(visible_axes(fig)) == len(METRICS)
    assert sorted(ax.get_title() for ax in visible_axes(fig)) == sorted(METRICS)
    for metric in METRICS:
        lines = {
            ln.get_gid().split("|")[1]: ln for ln in by_gid(fig, "profile|") if ln.get_gid().endswith(metric)
        }
        assert set(lines) == set(MODELS)
        for model, n in MODELS.items():
            x = lines[model].get_xdata()
            # every model spans [0, 1] on relative depth, whatever its number of layers
            assert len(x) == n and x[0] == 0.0 and x[-1] == pytest.approx(1.0)
        assert np.isnan(lines["salmonn"].get_ydata()[[3, 4]]).all()
        # the absent whisper layer is inserted as a NaN at its own depth, so the line breaks there
        wx, wy = lines["whisper"].get_xdata(), lines["whisper"].get_ydata()
        assert np.isnan(wy[8]) and wx[8] == pytest.approx(8 / 15)
        bands = [b for b in by_gid(fig, "ci|") if b.get_gid().endswith(metric)]
        assert len(bands) == len(MODELS) and all(isinstance(b, FillBetweenPolyCollection) for b in bands)
    # best layer: the profile peaks at depth 0.5 for every model
    best = by_gid(fig, "best|")
    assert len(best) == len(MODELS) * len(METRICS)
    for marker in best:
        n = MODELS[marker.get_gid().split("|")[1]]
        assert abs(marker.get_xdata()[0] - PEAK_DEPTH) <= 0.5 / (n - 1) + 1e-9
    planted = by_gid(fig, "planted|")
    assert len(planted) == len(METRICS)
    assert all(m.get_xdata()[0] == pytest.approx(10 / 39) for m in planted)
    # layers with q_FDR < 0.05 (even layer indices) are dotted
    sig = next(s for s in by_gid(fig, "sig|qwen2audio|rsa_spearman"))
    assert len(sig.get_xdata()) == 20


def test_layer_profiles_layer_index_and_explicit_best(
    layer_profile: pd.DataFrame, model_ranking: pd.DataFrame
) -> None:
    fig = F.layer_profiles_figure(layer_profile=layer_profile, x="layer_index", best_layers=model_ranking)
    line = next(iter(by_gid(fig, "profile|qwen2audio|cka_linear")))
    assert line.get_xdata()[-1] == 39
    expected = model_ranking.set_index(["model", "metric"]).loc[("qwen2audio", "cka_linear"), "best_layer"]
    marker = next(iter(by_gid(fig, "best|qwen2audio|cka_linear")))
    assert marker.get_xdata()[0] == int(expected.split(".")[1])
    with pytest.raises(ValueError, match="x must be"):
        F.layer_profiles_figure(layer_profile=layer_profile, x="depth")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ F2, F3


def test_ranking_heatmap(tmp_path: Path, model_ranking: pd.DataFrame, metric_agreement: pd.DataFrame) -> None:
    fig = F.ranking_heatmap_figure(
        model_ranking=model_ranking, metric_agreement=metric_agreement, kendall_w=0.62
    )
    assert "Kendall's W = 0.62" in fig.get_suptitle()
    ax_rank, ax_agree = (ax for ax in fig.get_axes() if ax.get_images())
    ranks = ax_rank.get_images()[0].get_array()
    assert ranks.shape == (len(MODELS), len(METRICS))
    assert ranks.mask.sum() == 1  # the NaN rank (salmonn, hsic_rbf) is shown as missing
    models = [t.get_text() for t in ax_rank.get_yticklabels()]
    mean_rank = model_ranking.groupby("model")["rank"].mean()
    assert models == sorted(MODELS, key=lambda m: (mean_rank[m], m))
    texts = [t.get_text() for t in ax_rank.texts]
    assert len(texts) == len(MODELS) * len(METRICS) and texts.count("–") == 1
    agree = np.asarray(ax_agree.get_images()[0].get_array())
    assert np.allclose(agree, agree.T) and np.allclose(np.diag(agree), 1.0)
    assert agree[0, 1] == pytest.approx(0.1) and agree[2, 3] == pytest.approx(0.5)
    assert ax_agree.get_images()[0].get_clim() == (-1.0, 1.0)
    fig_nan = F.ranking_heatmap_figure(
        model_ranking=model_ranking, metric_agreement=metric_agreement, kendall_w=np.nan
    )
    assert "W = n/a" in fig_nan.get_suptitle()
    out = F.plot_ranking_heatmap(
        model_ranking=model_ranking,
        metric_agreement=metric_agreement,
        kendall_w=0.62,
        out=tmp_path / "f2.png",
    )
    assert out.stat().st_size > 5_000


def test_best_layer_bars(tmp_path: Path, model_ranking: pd.DataFrame) -> None:
    fig = F.best_layer_bars_figure(model_ranking=model_ranking)
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == list(METRICS)
    for ax, metric in zip(axes, METRICS, strict=True):
        rows = model_ranking[model_ranking["metric"] == metric].set_index("model")
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == len(MODELS)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        shown = [(lab, bar.get_width()) for lab, bar in zip(labels, bars, strict=True) if bar.get_visible()]
        # top bar (last y) is the highest score, and each bar's length is that model's score
        assert labels[-1] == rows["score"].idxmax()
        for lab, width in shown:
            assert width == pytest.approx(rows.loc[lab, "score"])
        notes = [t.get_text().strip() for t in ax.texts]
        if metric == "hsic_rbf":
            assert len(shown) == len(MODELS) - 1 and "n/a" in notes
        else:
            assert sorted(notes) == sorted(rows["best_layer"])
    assert F.plot_best_layer_bars(model_ranking=model_ranking, out=tmp_path / "f3.png").stat().st_size > 5_000


def test_best_layer_bars_above_null_basis(model_ranking: pd.DataFrame) -> None:
    """The workflow draws F3 on the above-null basis: bar = score − own null, sorted by it."""
    table = model_ranking.assign(above_null=model_ranking["score"] - 0.1 * model_ranking["rank"].fillna(0))
    table = pd.concat([table, pd.DataFrame([{"reason": "a reason-only row"}])], ignore_index=True)
    fig = F.best_layer_bars_figure(model_ranking=table, score_col="above_null")
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == list(METRICS)
    ax = axes[0]
    rows = table[table["metric"] == next(iter(METRICS))].set_index("model")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == rows["above_null"].idxmax() and ax.get_xlabel() == "best-layer score − own null"


# ------------------------------------------------------------------------------------------------ F5


def test_window_timecourse_highlight_erp_and_layers(window_profile: pd.DataFrame) -> None:
    fig = F.window_timecourse_figure(window_profile=window_profile)
    panels = [ax for ax in fig.get_axes() if str(ax.get_gid()).startswith("timecourse|")]
    assert len(panels) == 2 * 2  # locks × metrics
    for ax in panels:
        spans = [p for p in ax.patches if p.get_label() == "250–500 ms (paper)"]
        assert len(spans) == 1
        x0, x1 = spans[0].get_x(), spans[0].get_x() + spans[0].get_width()
        assert (x0, x1) == (250.0, 500.0)
        assert any(t.get_text() == "250–500 ms (paper)" for t in ax.texts)
        lines = [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("window|")]
        assert len(lines) == 2
        for ln in lines:
            assert ln.get_gid().split("|")[2] == "encoder.06"  # default: the layer with the higher mean
            x, y = ln.get_xdata(), ln.get_ydata()
            assert len(x) == 20 and x[0] == 125.0 and np.all(np.diff(x) == 50.0)
            assert np.isnan(y[12])  # the NaN window at 600 ms stays a gap
    tracks = [ax for ax in fig.get_axes() if str(ax.get_gid()).startswith("erp|")]
    assert len(tracks) == len(panels)
    for track in tracks:
        bars = {p.get_label(): (p.get_x(), p.get_x() + p.get_width()) for p in track.patches if p.get_label()}
        assert {k: v for k, v in bars.items() if not k.startswith("_")} == {n: (a, b) for n, a, b in ERP}
        assert {t.get_text() for t in track.texts} == {n for n, _, _ in ERP}


def test_window_timecourse_chosen_layer_and_custom_highlight(window_profile: pd.DataFrame) -> None:
    fig = F.window_timecourse_figure(
        window_profile=window_profile,
        layers={"whisper": "encoder.02", "qwen2audio": "encoder.02"},
        highlight=(300, 500),
        erp_windows=[],
    )
    assert not [ax for ax in fig.get_axes() if str(ax.get_gid()).startswith("erp|")]
    ax = axes_by_gid(fig, "timecourse|word|cka_linear")
    span = next(p for p in ax.patches if p.get_gid() == "highlight")
    assert (span.get_x(), span.get_width()) == (300.0, 200.0) and span.get_label() == "300–500 ms (paper)"
    lines = [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("window|")]
    # with no ERP windows declared, N100 … P600 join the series (20 sliding + 5)
    assert {ln.get_gid().split("|")[2] for ln in lines} == {"encoder.02"} and len(lines[0].get_xdata()) == 25
    with pytest.raises(ValueError, match=r"layer 'encoder\.99'"):
        F.window_timecourse_figure(window_profile=window_profile, layers={"whisper": "encoder.99"})


def test_plot_window_timecourse_file(tmp_path: Path, window_profile: pd.DataFrame) -> None:
    out = F.plot_window_timecourse(window_profile=window_profile, out=tmp_path / "f5.png", dpi=60)
    assert out.is_file() and out.stat().st_size > 5_000


# ------------------------------------------------------------------------------------------------ F4 topomaps


def sensors(ax: Axes) -> np.ndarray:
    cols = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(cols) == 1
    return np.asarray(cols[0].get_offsets())


def test_topomaps_use_montage_positions(tmp_path: Path) -> None:
    montage = mne.channels.make_standard_montage("biosemi32")
    channels = [c for c in montage.ch_names if c != "Pz"]  # a channel not in the table is simply absent
    table = topo_table("biosemi32", channels[::-1])  # reversed: the drawing must not depend on row order
    table.loc[(table["window"] == "P600") & (table["channel"] == "O1"), "mean"] = np.nan
    fig = F.topomaps_figure(topography=table, montage="biosemi32")
    maps = [ax for ax in fig.get_axes() if str(ax.get_gid()).startswith("topomap|")]
    assert [ax.get_title() for ax in maps] == ["N100", "N400", "P600"]
    assert len(fig.get_axes()) == len(maps) + 1  # one shared colour bar
    assert [len(sensors(ax)) for ax in maps] == [31, 31, 30]  # NaN channel left out of its panel
    pos = dict(zip([c for c in montage.ch_names if c != "Pz"], sensors(maps[0]), strict=True))
    assert pos["Fp1"][1] > 0 > pos["Oz"][1]  # front up, back down
    assert pos["T7"][0] < 0 < pos["T8"][0]  # left and right
    assert np.hypot(*pos["Cz"]) < 0.2 * np.hypot(*pos["T7"])  # Cz at the vertex, not on a made-up ring
    assert pos["Fp1"][0] < 0 < pos["Fp2"][0]
    lim = np.nanmax(np.abs(table.loc[table["channel"] != "all", "mean"]))
    for ax in maps:
        im = next(a for a in ax.get_children() if isinstance(a, AxesImage))
        assert im.get_clim() == pytest.approx((-lim, lim))
    out = F.plot_topomaps(topography=table, montage="biosemi32", out=tmp_path / "f4.png", windows=["N400"])
    assert out.stat().st_size > 3_000


def test_topomaps_numeric_names_windows_and_errors() -> None:
    montage = mne.channels.make_standard_montage("easycap-M10")
    ints = [int(c) for c in montage.ch_names if c != "29"]  # as read back from a TSV: numbers, not text
    table = topo_table("easycap-M10", ints)
    fig = F.topomaps_figure(topography=table, montage="easycap-M10", windows=["P600", "N100"])
    maps = [ax for ax in fig.get_axes() if str(ax.get_gid()).startswith("topomap|")]
    assert [ax.get_title() for ax in maps] == ["P600", "N100"]
    assert all(len(sensors(ax)) == 60 for ax in maps)

    lower = topo_table(
        "biosemi32", [c.lower() for c in mne.channels.make_standard_montage("biosemi32").ch_names]
    )
    assert (
        len(
            sensors(
                axes_by_gid(
                    F.topomaps_figure(topography=lower, montage="biosemi32"),
                    "topomap|whisper|encoder.05|N100",
                )
            )
        )
        == 32
    )

    bad = topo_table("biosemi32", ["Fp1", "Cz", "Oz", "XYZ9"])
    with pytest.raises(ValueError, match=r"XYZ9.*biosemi32"):
        F.topomaps_figure(topography=bad, montage="biosemi32")
    two = pd.concat([table, table.assign(metric="cka_linear")])
    with pytest.raises(ValueError, match="several metrics"):
        F.topomaps_figure(topography=two, montage="easycap-M10")
    with pytest.raises(ValueError, match="window"):
        F.topomaps_figure(topography=table, montage="easycap-M10", windows=["N999"])


# ------------------------------------------------------------------------------------------------ F7


def test_prosody_groups_two_family_panels(
    tmp_path: Path, prosody_tables: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    pg, ps = prosody_tables
    fig = F.prosody_groups_figure(prosody_groups=pg, per_subject=ps)
    assert [sf.get_suptitle() for sf in fig.subfigs] == ["geometric metrics", "dependence metrics"]
    assert [len(sf.get_axes()) for sf in fig.subfigs] == [2, 2]
    for sf, family in zip(fig.subfigs, ("geometric", "dependence"), strict=True):
        assert [ax.get_title() for ax in sf.get_axes()] == [m for m, f in METRICS.items() if f == family]
        for ax in sf.get_axes():
            assert [t.get_text() for t in ax.get_xticklabels()] == ["negative", "other"]
    pts = {p.get_gid(): np.asarray(p.get_offsets()) for p in by_gid(fig, "points|")}
    assert all(len(v) == 7 for v in pts.values())  # one point per subject
    assert np.isfinite(pts["points|dcor2|negative"]).all()  # subject 07's extra NaN row is ignored, not drawn
    # without per-subject data the points are the models
    fig2 = F.prosody_groups_figure(prosody_groups=pg)
    assert all(len(p.get_offsets()) == 2 for p in by_gid(fig2, "points|"))
    assert "models" in fig2.subfigs[0].get_axes()[0].get_ylabel()
    out = F.plot_prosody_groups(prosody_groups=pg, per_subject=None, out=tmp_path / "f7.png")
    assert out.stat().st_size > 5_000


# ------------------------------------------------------------------------------------------------ F8, F9


def test_tnc_panels_and_null(tmp_path: Path, tnc_table: pd.DataFrame) -> None:
    null = np.random.default_rng(6).normal(0.1, 0.02, 999)
    fig = F.tnc_figure(tnc=tnc_table, null_overlap=null, observed_overlap=0.14)
    ax_c, ax_lab, ax_ov, ax_null = fig.get_axes()
    assert [t.get_text() for t in ax_c.get_xticklabels()] == ["acoustic", "EEG", "model"]
    assert any(ln.get_xdata()[0] == 0.5 for ln in ax_lab.get_lines())  # τ line
    assert ax_lab.get_title() == "negative: 10, other: 18, excluded: 12"
    assert sum(p.get_height() for p in ax_ov.patches) == len(tnc_table)
    p = (1 + np.sum(null >= 0.14)) / (1 + null.size)
    assert ax_null.get_title().endswith(f"p = {p:.3g}")
    assert any(ln.get_xdata()[0] == 0.14 for ln in ax_null.get_lines())
    fig2 = F.tnc_figure(tnc=tnc_table)
    assert not fig2.get_axes()[-1].axison and "no null" in fig2.get_axes()[-1].texts[0].get_text()
    assert F.plot_tnc(
        tnc=tnc_table, null_overlap=null, observed_overlap=0.14, out=tmp_path / "f8.png"
    ).is_file()


def test_null_diagnostics(tmp_path: Path, metric_rows: pd.DataFrame) -> None:
    fig = F.null_diagnostics_figure(metric_rows=metric_rows)
    axes = fig.get_axes()
    assert len(axes) == 4
    for col in ("p_shift", "p_mismatch", "p_frameperm_codefaithful"):
        ax = axes_by_gid(fig, f"pvalues|{col}")
        n = int(metric_rows[col].notna().sum())
        assert sum(p.get_height() for p in ax.patches) == n
        frac = float(np.mean(metric_rows[col].dropna() < 0.05))
        assert f"{frac:.1%}" in ax.get_title() and f"n = {n}" in ax.get_title()
        uniform = [ln for ln in ax.get_lines() if ln.get_label() == "uniform"]
        assert uniform[0].get_ydata()[0] == pytest.approx(n / 20)
    heights = [p.get_height() for p in axes_by_gid(fig, "pvalues|p_frameperm_codefaithful").patches]
    assert heights[0] == max(heights)  # piles up near 0, as the frame-permutation null should
    assert "n = 395" in axes[-1].get_title()  # zero null SD → z dropped
    assert F.plot_null_diagnostics(metric_rows=metric_rows, out=tmp_path / "f9.png").stat().st_size > 5_000


# ------------------------------------------------------------------------------------------------ F6


def test_rdm_pair_no_clipping(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(25, 3))
    model = 1.0 - np.corrcoef(x)
    eeg = 1.0 - np.corrcoef(x + rng.normal(size=x.shape))
    assert model.max() > 1.2 and eeg.max() > 1.2  # clipping at 1 would change the ranks
    iu = np.triu_indices(25, k=1)
    rho = spearmanr(model[iu], eeg[iu]).statistic
    rho_clipped = spearmanr(np.clip(model, 0, 1)[iu], np.clip(eeg, 0, 1)[iu]).statistic
    assert abs(rho - rho_clipped) > 1e-3
    assert F.upper_triangle_spearman(model, eeg) == (pytest.approx(rho), 300)

    fig = F.rdm_pair_figure(model_rdm=model, eeg_rdm=eeg, title="whisper · encoder.05 · sentence 3")
    shown = float(re.search(r"ρ \(upper triangles\) = (-?[0-9.]+)", fig.get_suptitle()).group(1))
    assert shown == pytest.approx(rho, abs=5e-4) and "sentence 3" in fig.get_suptitle()
    images = [ax.get_images()[0] for ax in fig.get_axes() if ax.get_images()]
    assert len(images) == 2
    for im, rdm in zip(images, (model, eeg), strict=True):
        assert im.get_clim()[1] == pytest.approx(rdm.max())
        assert np.array_equal(np.asarray(im.get_array()), rdm)

    eeg_nan = eeg.copy()
    eeg_nan[0, 1] = np.nan
    assert F.upper_triangle_spearman(model, eeg_nan)[1] == 299
    assert np.isnan(F.upper_triangle_spearman(np.ones((5, 5)), eeg[:5, :5])[0])
    with pytest.raises(ValueError, match="equal shape"):
        F.rdm_pair_figure(model_rdm=model, eeg_rdm=eeg[:20, :20])
    out = F.plot_rdm_pair(model_rdm=model, eeg_rdm=eeg, out=tmp_path / "f6.png", title="t")
    assert out.stat().st_size > 5_000


# ------------------------------------------------------------------------------------------------ captions


REPORT = Path(__file__).resolve().parents[1] / "workflow" / "report"
CAPTIONS = [
    "layer_profiles",
    "ranking_heatmap",
    "best_layer_bars",
    "window_timecourse",
    "topomaps",
    "prosody_groups",
    "tnc",
    "null_diagnostics",
    "rdm_pair",
]


@pytest.mark.parametrize("name", [*CAPTIONS, "workflow"])
def test_report_captions_exist(name: str) -> None:
    path = REPORT / f"{name}.rst"
    text = path.read_text(encoding="utf-8")
    assert len(text.split()) > 30
    if name in ("layer_profiles", "window_timecourse"):
        assert "95 %" in text and "bootstrap" in text
