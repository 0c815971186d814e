"""Figures F1–F9 of the study, one function per figure, each drawn from the tidy tables.

Every ``plot_*`` function takes tidy DataFrames (columns as in ``docs/architecture.md``) and an output
path, writes the figure atomically and returns the path. The matching ``*_figure`` builder returns the
:class:`matplotlib.figure.Figure` itself so that notebooks and tests can inspect it.

Figures are built on bare :class:`~matplotlib.figure.Figure` objects, never through ``pyplot``: that needs
no interactive backend (saving goes through Agg), touches no global figure registry (nothing to close,
safe in parallel Snakemake jobs) and leaves the caller's backend choice alone.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, ParamSpec

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import blended_transform_factory

__all__ = [
    "DEFAULT_DPI",
    "OKABE_ITO",
    "best_layer_bars_figure",
    "layer_profiles_figure",
    "model_styles",
    "null_diagnostics_figure",
    "plot_best_layer_bars",
    "plot_layer_profiles",
    "plot_null_diagnostics",
    "plot_prosody_groups",
    "plot_ranking_heatmap",
    "plot_rdm_pair",
    "plot_tnc",
    "plot_topomaps",
    "plot_window_timecourse",
    "prosody_groups_figure",
    "ranking_heatmap_figure",
    "rdm_pair_figure",
    "tnc_figure",
    "topomaps_figure",
    "upper_triangle_spearman",
    "window_timecourse_figure",
]

DEFAULT_DPI = 150

# Okabe & Ito (2008) colour-blind-safe qualitative palette; black last because it doubles as the
# annotation colour. With more models than colours the line style changes, so 12 models stay distinct.
OKABE_ITO: tuple[str, ...] = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#000000",
)
_LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.")
_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "h")
GROUP_COLOURS: dict[str, str] = {"negative": "#D55E00", "other": "#0072B2"}
_SEQ_CMAP = "cividis"  # perceptually uniform and readable with colour-vision deficiencies
_DIV_CMAP = "RdBu_r"  # ColorBrewer diverging map, distinguishable for deuteranopes and protanopes

# A fixed style so that a user's matplotlibrc cannot change the figures (determinism).
_RC: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.edgecolor": "white",
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.0,
    "legend.fontsize": 7.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
    "svg.hashsalt": "hearlike",
    "path.simplify": True,
}

# Default test for "this window is an ERP window, not a step of the sliding series": the name starts
# with a component (N400, P300_250_500, LPC) or with "erp"/"paper" (e.g. paper_250_500).
_ERP_NAME = re.compile(r"^(?:[NP]\d{2,3}(?![0-9])|LPC|MMN|ELAN|LAN|erp|paper)", re.IGNORECASE)

P = ParamSpec("P")


def _styled(func: Callable[P, Figure]) -> Callable[P, Figure]:
    """Build a figure under the fixed rc style."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained", facecolor="white")


def _save(fig: Figure, out: str | Path, dpi: float) -> Path:
    """Write ``fig`` atomically; metadata that varies between runs or versions is dropped."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = out.suffix.lstrip(".").lower() or "png"
    metadata: dict[str, Any] = {
        "png": {"Software": None},
        "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
        "svg": {"Creator": None, "Date": None},
    }.get(fmt, {})
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=f".{fmt}")
    os.close(fd)
    try:
        with rc_context(_RC):
            fig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white", metadata=metadata)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _require(df: pd.DataFrame, columns: Iterable[str], *, table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {missing}; have {list(df.columns)}")


def _ordered(values: Iterable[Any]) -> list[Any]:
    """Unique values in order of first appearance, NaN dropped (table order = config order)."""
    return [v for v in pd.unique(pd.Series(list(values), dtype=object)) if not pd.isna(v)]


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def model_styles(models: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Colour, line style and marker per model, assigned in sorted order so all figures agree."""
    styles: dict[str, dict[str, Any]] = {}
    for i, model in enumerate(sorted({str(m) for m in models})):
        styles[model] = {
            "color": OKABE_ITO[i % len(OKABE_ITO)],
            "linestyle": _LINESTYLES[(i // len(OKABE_ITO)) % len(_LINESTYLES)],
            "marker": _MARKERS[i % len(_MARKERS)],
        }
    return styles


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def _hide_unused(axes: np.ndarray, n_used: int) -> None:
    for ax in axes.ravel()[n_used:]:
        ax.set_visible(False)


def _text_colour(cmap: Colormap, norm: Normalize, value: float) -> str:
    """Black or white annotation, whichever reads better on the cell colour."""
    if not np.isfinite(value):
        return "black"
    r, g, b, _ = cmap(norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _choose(df: pd.DataFrame, column: str, value: Any, *, table: str) -> pd.DataFrame:
    """Filter ``df`` to ``column == value``, or require the column to be unique when ``value`` is None."""
    present = _ordered(df[column])
    if value is None:
        if len(present) > 1:
            raise ValueError(f"{table}: several {column}s {present}; pass {column}= to choose one")
        return df
    if value not in present:
        raise ValueError(f"{table}: {column} {value!r} not present; have {present}")
    return df[df[column] == value]


# --------------------------------------------------------------------------------------------------
# F1 layer profiles


def _profile_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """One model × metric profile sorted by layer, with missing layers inserted as NaN rows (gaps)."""
    rows = rows.sort_values("layer_index")
    idx = rows["layer_index"].to_numpy(dtype=float)
    full = np.arange(int(np.nanmin(idx)), int(np.nanmax(idx)) + 1)
    out = rows.set_index(rows["layer_index"].astype(int)).reindex(full)
    out["layer_index"] = full
    depth = rows["relative_depth"].to_numpy(dtype=float)
    ok = (idx > 0) & np.isfinite(depth)
    if out["relative_depth"].isna().any() and ok.any():
        # the slope is 1 / (n_layers - 1); rebuild the depth of an absent layer from it
        out["relative_depth"] = full * float(np.median(depth[ok] / idx[ok]))
    return out


@_styled
def layer_profiles_figure(
    *,
    layer_profile: pd.DataFrame,
    x: Literal["relative_depth", "layer_index"] = "relative_depth",
    metrics: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    best_layers: pd.DataFrame | None = None,
    planted: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    ncols: int = 4,
) -> Figure:
    """F1: one panel per metric, one line per model, bootstrap CI band, best (and planted) layer marked.

    ``best_layers`` (columns ``model metric best_layer``, e.g. the model ranking) overrides the default
    best layer, the layer with the highest mean. ``planted`` maps model → layer name (demo data).
    Layers with ``q_fdr < alpha`` get a filled dot. NaN means and absent layers leave gaps.
    """
    if x not in ("relative_depth", "layer_index"):
        raise ValueError(f"x must be 'relative_depth' or 'layer_index', not {x!r}")
    _require(
        layer_profile,
        ["model", "layer", "layer_index", "relative_depth", "metric", "mean", "ci_low", "ci_high"],
        table="layer_profile",
    )
    metrics = list(metrics) if metrics is not None else _ordered(layer_profile["metric"])
    models = list(models) if models is not None else _ordered(layer_profile["model"])
    if not metrics or not models:
        raise ValueError("layer_profile: no rows to plot")
    styles = model_styles(_ordered(layer_profile["model"]))
    best_map: dict[tuple[str, str], str] = {}
    if best_layers is not None:
        _require(best_layers, ["model", "metric", "best_layer"], table="best_layers")
        best_map = {
            (r.model, r.metric): r.best_layer for r in best_layers.itertuples() if pd.notna(r.best_layer)
        }

    nrows, ncols = _grid(len(metrics), ncols)
    fig = _new_figure(2.6 * ncols + 1.6, 2.2 * nrows + 0.5)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharex=True))
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        for model in models:
            rows = layer_profile[(layer_profile["model"] == model) & (layer_profile["metric"] == metric)]
            if rows.empty:
                continue
            prof = _profile_frame(rows)
            st = styles[model]
            xs = prof[x].to_numpy(dtype=float)
            ys = prof["mean"].to_numpy(dtype=float)
            (line,) = ax.plot(xs, ys, color=st["color"], linestyle=st["linestyle"], lw=1.4, label=model)
            line.set_gid(f"profile|{model}|{metric}")
            band = ax.fill_between(
                xs,
                prof["ci_low"].to_numpy(dtype=float),
                prof["ci_high"].to_numpy(dtype=float),
                color=st["color"],
                alpha=0.2,
                lw=0,
            )
            band.set_gid(f"ci|{model}|{metric}")
            if "q_fdr" in prof:
                sig = prof["q_fdr"].to_numpy(dtype=float) < alpha
                if sig.any():
                    ax.plot(xs[sig], ys[sig], "o", ms=2.5, color=st["color"], gid=f"sig|{model}|{metric}")
            best = best_map.get((model, metric))
            if best is None and np.isfinite(ys).any():
                best = prof["layer"].iloc[int(np.nanargmax(ys))]
            hit = prof[prof["layer"] == best]
            if len(hit):
                ax.plot(
                    hit[x].to_numpy(dtype=float),
                    hit["mean"].to_numpy(dtype=float),
                    marker="*",
                    ms=10,
                    ls="none",
                    color=st["color"],
                    mec="black",
                    mew=0.6,
                    zorder=5,
                    gid=f"best|{model}|{metric}",
                )
            if planted and model in planted:
                hit = prof[prof["layer"] == planted[model]]
                if len(hit):
                    ax.plot(
                        hit[x].to_numpy(dtype=float),
                        hit["mean"].to_numpy(dtype=float),
                        marker="o",
                        ms=9,
                        ls="none",
                        mfc="none",
                        mec="black",
                        mew=1.0,
                        zorder=6,
                        gid=f"planted|{model}|{metric}",
                    )
        ax.set_title(metric)
        ax.grid(alpha=0.3, lw=0.5)
        if x == "relative_depth":
            ax.set_xlim(-0.02, 1.02)
    _hide_unused(axes, len(metrics))
    xlabel = "relative depth (layer index / (n layers − 1))" if x == "relative_depth" else "layer index"
    for ax in axes[-1, :]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel("similarity (mean over subjects)")
    handles: list[Any] = [
        Line2D([], [], color=styles[m]["color"], ls=styles[m]["linestyle"], label=m) for m in models
    ]
    handles.append(Line2D([], [], marker="*", ms=9, ls="none", color="grey", mec="black", label="best layer"))
    if planted:
        handles.append(
            Line2D([], [], marker="o", ms=8, ls="none", mfc="none", mec="black", label="planted layer")
        )
    if "q_fdr" in layer_profile:
        handles.append(Line2D([], [], marker="o", ms=3, ls="none", color="grey", label=f"q_FDR < {alpha:g}"))
    handles.append(Patch(color="grey", alpha=0.25, label="95 % bootstrap CI"))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    fig.suptitle("Layer profiles: mean over subjects with bootstrap 95 % CI")
    return fig


def plot_layer_profiles(
    *,
    layer_profile: pd.DataFrame,
    out: str | Path,
    x: Literal["relative_depth", "layer_index"] = "relative_depth",
    metrics: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    best_layers: pd.DataFrame | None = None,
    planted: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """F1, written to ``out``; see :func:`layer_profiles_figure`."""
    fig = layer_profiles_figure(
        layer_profile=layer_profile,
        x=x,
        metrics=metrics,
        models=models,
        best_layers=best_layers,
        planted=planted,
        alpha=alpha,
    )
    return _save(fig, out, dpi)


# --------------------------------------------------------------------------------------------------
# F2 ranking heat map + metric agreement


def _annotated_heatmap(
    ax: Axes,
    values: np.ndarray,
    *,
    fmt: Callable[[float], str],
    cmap: str,
    vmin: float,
    vmax: float,
) -> Any:
    cmap_obj = colormaps[cmap].with_extremes(bad="#d9d9d9")
    norm = Normalize(vmin=vmin, vmax=vmax)
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap_obj, norm=norm, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, fmt(v), ha="center", va="center", fontsize=7, color=_text_colour(cmap_obj, norm, v))
    return im


@_styled
def ranking_heatmap_figure(
    *,
    model_ranking: pd.DataFrame,
    metric_agreement: pd.DataFrame,
    kendall_w: float,
    coefficient: Literal["spearman", "kendall"] = "spearman",
) -> Figure:
    """F2: models × metrics rank heat map (1 = best) and the metric-by-metric rank agreement matrix."""
    _require(model_ranking, ["model", "metric", "rank"], table="model_ranking")
    _require(metric_agreement, ["metric_a", "metric_b", coefficient], table="metric_agreement")
    metrics = _ordered(model_ranking["metric"])
    ranks = model_ranking.pivot_table(
        index="model", columns="metric", values="rank", aggfunc="first", dropna=False
    )
    ranks = ranks.reindex(columns=metrics)
    # best models on top: order by mean rank over metrics, name as the tie-break for determinism
    order = sorted(
        ranks.index, key=lambda m: (np.nan_to_num(np.nanmean(ranks.loc[m].to_numpy(float)), nan=np.inf), m)
    )
    ranks = ranks.loc[order]

    agree = np.full((len(metrics), len(metrics)), np.nan)
    np.fill_diagonal(agree, 1.0)
    pos = {m: i for i, m in enumerate(metrics)}
    for r in metric_agreement.itertuples():
        a, b = r.metric_a, r.metric_b
        if a in pos and b in pos:  # skips the Kendall's W summary row
            v = float(getattr(r, coefficient))
            agree[pos[a], pos[b]] = agree[pos[b], pos[a]] = v

    n_mod, n_met = ranks.shape
    fig = _new_figure(0.55 * n_met * 2 + 4.0, 0.35 * max(n_mod, n_met) + 2.0)
    ax_rank, ax_agree = fig.subplots(1, 2, width_ratios=[1.0, 1.0])
    im = _annotated_heatmap(
        ax_rank,
        ranks.to_numpy(dtype=float),
        fmt=lambda v: "–" if not np.isfinite(v) else f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}",
        cmap=f"{_SEQ_CMAP}_r",
        vmin=1.0,
        vmax=max(float(n_mod), 2.0),
    )
    ax_rank.set_xticks(range(n_met), metrics, rotation=45, ha="right")
    ax_rank.set_yticks(range(n_mod), list(ranks.index))
    ax_rank.set_title("model rank per metric (1 = most EEG-like)")
    fig.colorbar(im, ax=ax_rank, label="rank", shrink=0.8)
    im2 = _annotated_heatmap(ax_agree, agree, fmt=lambda v: _fmt(v, 2), cmap=_DIV_CMAP, vmin=-1.0, vmax=1.0)
    ax_agree.set_xticks(range(n_met), metrics, rotation=45, ha="right")
    ax_agree.set_yticks(range(n_met), metrics)
    ax_agree.set_title(f"agreement of model rankings ({coefficient})")
    fig.colorbar(im2, ax=ax_agree, label=f"{coefficient} correlation of ranks", shrink=0.8)
    for ax in (ax_rank, ax_agree):
        ax.spines[:].set_visible(False)
    fig.suptitle(f"Model ranking across metrics — Kendall's W = {_fmt(kendall_w, 3)}")
    return fig


def plot_ranking_heatmap(
    *,
    model_ranking: pd.DataFrame,
    metric_agreement: pd.DataFrame,
    kendall_w: float,
    out: str | Path,
    coefficient: Literal["spearman", "kendall"] = "spearman",
    dpi: float = DEFAULT_DPI,
) -> Path:
    """F2, written to ``out``; see :func:`ranking_heatmap_figure`."""
    fig = ranking_heatmap_figure(
        model_ranking=model_ranking,
        metric_agreement=metric_agreement,
        kendall_w=kendall_w,
        coefficient=coefficient,
    )
    return _save(fig, out, dpi)


# --------------------------------------------------------------------------------------------------
# F3 best-layer bars


#: x-axis label of F3 per plotted column of the model ranking.
_BAR_LABELS = {"score": "best-layer score", "score_raw": "best-layer score (raw)",
               "above_null": "best-layer score − own null"}


@_styled
def best_layer_bars_figure(
    *, model_ranking: pd.DataFrame, ncols: int = 4, score_col: str = "score", layer_col: str = "best_layer"
) -> Figure:
    """F3: per metric, each model's best-layer score as a sorted horizontal bar labelled with that layer.

    ``score_col``/``layer_col`` pick the basis: ``above_null``/``best_layer`` (the workflow's: score above
    the model's own null, the layer where that is largest) or ``score_raw``/``best_layer_raw`` (raw).
    """
    _require(model_ranking, ["model", "metric", layer_col, score_col], table="model_ranking")
    model_ranking = model_ranking.dropna(subset=["metric"])  # a reason-only row has nothing to draw
    metrics = _ordered(model_ranking["metric"])
    if not metrics:
        raise ValueError("model_ranking: no rows to plot")
    styles = model_styles(_ordered(model_ranking["model"]))
    nrows, ncols = _grid(len(metrics), ncols)
    n_mod = len(styles)
    fig = _new_figure(2.8 * ncols, (0.25 * n_mod + 0.9) * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False))
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        rows = model_ranking[model_ranking["metric"] == metric].copy()
        rows["_s"] = rows[score_col].astype(float)
        # highest score on top; NaN scores last, with the model name as the deterministic tie-break
        rows = rows.sort_values(["_s", "model"], ascending=[True, False], na_position="first")
        ys = np.arange(len(rows))
        scores = rows["_s"].to_numpy()
        bars = ax.barh(
            ys,
            np.nan_to_num(scores, nan=0.0),
            color=[styles[m]["color"] for m in rows["model"]],
            edgecolor="black",
            lw=0.4,
        )
        for bar, score in zip(bars, scores, strict=True):
            bar.set_visible(bool(np.isfinite(score)))
        trans = blended_transform_factory(ax.transAxes, ax.transData)
        for y, (layer, score) in enumerate(zip(rows[layer_col], scores, strict=True)):
            label = f"{layer}" if np.isfinite(score) else "n/a"
            ax.text(1.0, y, f" {label}", transform=trans, va="center", ha="left", fontsize=6.5, clip_on=False)
        ax.set_yticks(ys, list(rows["model"]))
        ax.axvline(0.0, color="black", lw=0.6)
        ax.set_title(metric)
        ax.set_xlabel(_BAR_LABELS.get(score_col, score_col))
    _hide_unused(axes, len(metrics))
    fig.suptitle("Best layer per model and metric (label: layer name)")
    return fig


def plot_best_layer_bars(
    *,
    model_ranking: pd.DataFrame,
    out: str | Path,
    ncols: int = 4,
    dpi: float = DEFAULT_DPI,
    score_col: str = "score",
    layer_col: str = "best_layer",
) -> Path:
    """F3, written to ``out``; see :func:`best_layer_bars_figure`."""
    fig = best_layer_bars_figure(model_ranking=model_ranking, ncols=ncols, score_col=score_col, layer_col=layer_col)
    return _save(fig, out, dpi)


# --------------------------------------------------------------------------------------------------
# F5 sliding-window time course


def _is_erp_window(name: Any) -> bool:
    return bool(_ERP_NAME.match(str(name)))


def _lanes(spans: list[tuple[float, float]]) -> list[int]:
    """Greedy lane per span so that overlapping ERP windows are stacked, not drawn on top of each other."""
    ends: list[float] = []
    lanes: list[int] = []
    for start, end in spans:
        for k, last in enumerate(ends):
            if start > last:  # touching windows (N100 80–150, P200 150–250) go to separate lanes
                ends[k] = end
                lanes.append(k)
                break
        else:
            ends.append(end)
            lanes.append(len(ends) - 1)
    return lanes


@_styled
def window_timecourse_figure(
    *,
    window_profile: pd.DataFrame,
    highlight: tuple[float, float] | None = (250.0, 500.0),
    highlight_label: str | None = None,
    layers: Mapping[str, str] | None = None,
    erp_windows: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    locks: Sequence[str] | None = None,
) -> Figure:
    """F5: sliding-window mean (bootstrap CI band) against window centre, one line per model.

    Rows are locks (sentence/word), columns metrics. Each model is drawn at ``layers[model]`` or, by
    default, at its layer with the highest mean over the sliding windows. ERP windows (``erp_windows``,
    default: names such as ``N400``, ``P600_500_800``) are drawn as labelled bars under each panel;
    the ``highlight`` span is shaded and labelled ``"250–500 ms (paper)"``.
    """
    _require(
        window_profile,
        ["model", "layer", "metric", "lock", "window", "start_ms", "end_ms", "mean", "ci_low", "ci_high"],
        table="window_profile",
    )
    wp = window_profile.copy()
    erp_set = (
        set(erp_windows)
        if erp_windows is not None
        else {w for w in _ordered(wp["window"]) if _is_erp_window(w)}
    )
    is_erp = wp["window"].isin(erp_set)
    only_erp = not (~is_erp).any()
    sliding = wp if only_erp else wp[~is_erp]  # only ERP windows: plot them as the series
    erp = wp[is_erp]
    metrics = list(metrics) if metrics is not None else _ordered(wp["metric"])
    locks = list(locks) if locks is not None else _ordered(wp["lock"])
    if not metrics or not locks:
        raise ValueError("window_profile: no rows to plot")
    styles = model_styles(_ordered(wp["model"]))
    models = _ordered(wp["model"])
    if highlight is not None and highlight_label is None:
        highlight_label = f"{highlight[0]:g}–{highlight[1]:g} ms (paper)"

    erp_spans = (
        erp.drop_duplicates("window")[["window", "start_ms", "end_ms"]].sort_values(
            ["start_ms", "end_ms", "window"]
        )
        if len(erp)
        else pd.DataFrame(columns=["window", "start_ms", "end_ms"])
    )
    lanes = _lanes(
        list(zip(erp_spans["start_ms"].astype(float), erp_spans["end_ms"].astype(float), strict=True))
    )
    n_lanes = max(lanes, default=-1) + 1

    nrows, ncols = len(locks), len(metrics)
    track_h = 0.18 * n_lanes + 0.15 if n_lanes else 0.0
    fig = _new_figure(3.4 * ncols + 1.6, (2.4 + track_h) * nrows + 0.5)
    outer = fig.add_gridspec(nrows, ncols)
    for i, lock in enumerate(locks):
        for j, metric in enumerate(metrics):
            if n_lanes:
                inner = outer[i, j].subgridspec(2, 1, height_ratios=[2.4, track_h], hspace=0.0)
                ax = fig.add_subplot(inner[0])
                track = fig.add_subplot(inner[1], sharex=ax)
            else:
                ax, track = fig.add_subplot(outer[i, j]), None
            ax.set_gid(f"timecourse|{lock}|{metric}")
            sub = sliding[(sliding["lock"] == lock) & (sliding["metric"] == metric)]
            for model in models:
                rows = sub[sub["model"] == model]
                if rows.empty:
                    continue
                if layers is not None and model in layers:
                    layer = layers[model]
                else:
                    means = rows.groupby("layer", sort=True)["mean"].mean()
                    layer = means.idxmax() if means.notna().any() else means.index[0]
                if not (rows["layer"] == layer).any():
                    raise ValueError(f"window_profile: layer {layer!r} of model {model!r} not present")
                rows = rows[rows["layer"] == layer].copy()
                rows["_c"] = (rows["start_ms"].astype(float) + rows["end_ms"].astype(float)) / 2.0
                rows = rows.sort_values("_c")
                st = styles[model]
                xs = rows["_c"].to_numpy()
                ax.plot(
                    xs,
                    rows["mean"].to_numpy(dtype=float),
                    color=st["color"],
                    ls=st["linestyle"],
                    marker=st["marker"] if only_erp or len(rows) < 4 else None,
                    ms=3,
                    lw=1.4,
                    label=f"{model} · {layer}",
                    gid=f"window|{model}|{layer}|{lock}|{metric}",
                )
                ax.fill_between(
                    xs,
                    rows["ci_low"].to_numpy(dtype=float),
                    rows["ci_high"].to_numpy(dtype=float),
                    color=st["color"],
                    alpha=0.2,
                    lw=0,
                )
            if highlight is not None:
                span = ax.axvspan(highlight[0], highlight[1], color="#999999", alpha=0.25, lw=0, zorder=0)
                span.set_label(highlight_label)
                span.set_gid("highlight")
                ax.text(
                    (highlight[0] + highlight[1]) / 2.0,
                    0.98,
                    highlight_label,
                    transform=blended_transform_factory(ax.transData, ax.transAxes),
                    ha="center",
                    va="top",
                    fontsize=6.5,
                )
            ax.axhline(0.0, color="black", lw=0.5)
            ax.set_title(f"{metric} · {lock}-locked")
            ax.set_ylabel("similarity (mean over subjects)")
            ax.legend(loc="upper right", fontsize=6, frameon=False, bbox_to_anchor=(1.0, 0.9))
            bottom = track if track is not None else ax
            bottom.set_xlabel("time from onset (ms); lines at window centres")
            if track is not None:
                ax.tick_params(labelbottom=False)
                track.set_gid(f"erp|{lock}|{metric}")
                track.set_ylim(n_lanes, 0)
                track.set_yticks([])
                track.spines[["left", "top", "right"]].set_visible(False)
                for lane, w in zip(lanes, erp_spans.itertuples(), strict=True):
                    start, end = float(w.start_ms), float(w.end_ms)
                    bar = Rectangle(
                        (start, lane + 0.15), end - start, 0.7, facecolor="#4d4d4d", edgecolor="white", lw=0.8
                    )
                    bar.set_label(str(w.window))
                    track.add_patch(bar)
                    track.text(
                        (start + end) / 2,
                        lane + 0.5,
                        str(w.window),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white",
                    )
                if highlight is not None:
                    track.axvspan(highlight[0], highlight[1], color="#999999", alpha=0.25, lw=0, zorder=0)
    fig.suptitle("Sliding-window alignment: mean over subjects with bootstrap 95 % CI")
    return fig


def plot_window_timecourse(
    *,
    window_profile: pd.DataFrame,
    out: str | Path,
    highlight: tuple[float, float] | None = (250.0, 500.0),
    highlight_label: str | None = None,
    layers: Mapping[str, str] | None = None,
    erp_windows: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    locks: Sequence[str] | None = None,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """F5 time course, written to ``out``; see :func:`window_timecourse_figure`."""
    fig = window_timecourse_figure(
        window_profile=window_profile,
        highlight=highlight,
        highlight_label=highlight_label,
        layers=layers,
        erp_windows=erp_windows,
        metrics=metrics,
        locks=locks,
    )
    return _save(fig, out, dpi)


# --------------------------------------------------------------------------------------------------
# F4/F5 topographies


def _channel_name(value: Any) -> str:
    """Channel label as text; TSV readers turn easycap names ``'1'…'61'`` into numbers."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _match_channels(channels: Sequence[str], montage_names: Sequence[str], montage: str) -> dict[str, str]:
    """Map table channel → montage channel (exact, then case-insensitive); unknown names raise."""
    exact = set(montage_names)
    folded = {n.casefold(): n for n in montage_names}
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for ch in channels:
        if ch in exact:
            mapping[ch] = ch
        elif ch.casefold() in folded:
            mapping[ch] = folded[ch.casefold()]
        else:
            unknown.append(ch)
    if unknown:
        raise ValueError(
            f"channel(s) {unknown} not in the MNE standard montage {montage!r} "
            f"(it has {len(montage_names)} channels, e.g. {list(montage_names[:5])})"
        )
    return mapping


@_styled
def topomaps_figure(
    *,
    topography: pd.DataFrame,
    montage: str,
    windows: Sequence[str] | None = None,
    model: str | None = None,
    layer: str | None = None,
    metric: str | None = None,
    cmap: str = _DIV_CMAP,
    vlim: float | None = None,
) -> Figure:
    """F4/F5: one scalp map per window (columns) and model/layer (rows), positions from the MNE montage.

    The metric must be unique after filtering. Colour limits are symmetric, ±max |mean| over all panels
    unless ``vlim`` is given, with one shared colour bar. NaN channels are left out of their panel.
    """
    import mne

    _require(topography, ["model", "layer", "metric", "window", "channel", "mean"], table="topography")
    topo = topography.copy()
    topo["channel"] = [_channel_name(c) for c in topo["channel"]]
    topo = topo[topo["channel"].str.casefold() != "all"]  # whole-scalp summary rows carry no position
    if model is not None:
        topo = _choose(topo, "model", model, table="topography")
    if layer is not None:
        topo = _choose(topo, "layer", layer, table="topography")
    topo = _choose(topo, "metric", metric, table="topography")
    if windows is not None:
        absent = [w for w in windows if w not in set(topo["window"])]
        if absent:
            raise ValueError(f"topography: window(s) {absent} not present; have {_ordered(topo['window'])}")
        topo = topo[topo["window"].isin(windows)]
        windows = list(windows)
    else:
        windows = _ordered(topo["window"])
    if topo.empty:
        raise ValueError("topography: no per-channel rows to plot")

    mont = mne.channels.make_standard_montage(montage)
    mapping = _match_channels(_ordered(topo["channel"]), mont.ch_names, montage)
    topo["_ch"] = topo["channel"].map(mapping)
    if topo.duplicated(["model", "layer", "window", "_ch"]).any():
        raise ValueError("topography: duplicate (model, layer, window, channel) rows")
    panels = _ordered(zip(topo["model"], topo["layer"], strict=True))
    values = topo["mean"].to_numpy(dtype=float)
    lim = (
        float(vlim)
        if vlim is not None
        else float(np.nanmax(np.abs(values)))
        if np.isfinite(values).any()
        else 1.0
    )
    if not np.isfinite(lim) or lim <= 0:
        lim = 1.0

    nrows, ncols = len(panels), len(windows)
    fig = _new_figure(1.9 * ncols + 1.0, 1.9 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False))
    image = None
    for i, (mod, lay) in enumerate(panels):
        for j, window in enumerate(windows):
            ax = axes[i, j]
            rows = topo[(topo["model"] == mod) & (topo["layer"] == lay) & (topo["window"] == window)]
            rows = rows[np.isfinite(rows["mean"].to_numpy(dtype=float))]
            # the montage's own order keeps the drawing independent of the table's row order
            rows = rows.set_index("_ch").reindex([c for c in mont.ch_names if c in set(rows["_ch"])])
            ax.set_gid(f"topomap|{mod}|{lay}|{window}")
            ax.set_title(f"{window}" if nrows == 1 else f"{mod} · {lay}\n{window}")
            if len(rows) < 3:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            info = mne.create_info(list(rows.index), sfreq=100.0, ch_types="eeg")
            info.set_montage(mont)
            image, _ = mne.viz.plot_topomap(
                rows["mean"].to_numpy(dtype=float),
                info,
                axes=ax,
                show=False,
                cmap=cmap,
                vlim=(-lim, lim),
                contours=0,
                sensors=True,
            )
    if image is not None:
        fig.colorbar(
            image,
            ax=list(axes.ravel()),
            shrink=0.7,
            label=f"{_ordered(topo['metric'])[0]} (mean over subjects)",
        )
    title = f"Topographies ({montage})"
    if nrows == 1:
        title += f": {panels[0][0]} · {panels[0][1]}"
    fig.suptitle(title)
    return fig


def plot_topomaps(
    *,
    topography: pd.DataFrame,
    montage: str,
    out: str | Path,
    windows: Sequence[str] | None = None,
    model: str | None = None,
    layer: str | None = None,
    metric: str | None = None,
    vlim: float | None = None,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """F4/F5 topographies, written to ``out``; see :func:`topomaps_figure`."""
    fig = topomaps_figure(
        topography=topography,
        montage=montage,
        windows=windows,
        model=model,
        layer=layer,
        metric=metric,
        vlim=vlim,
    )
    return _save(fig, out, dpi)


# --------------------------------------------------------------------------------------------------
# F7 prosody groups


def _group_order(groups: Iterable[Any]) -> list[str]:
    present = sorted({str(g) for g in groups if pd.notna(g)})
    return sorted(present, key=lambda g: (g != "negative", g != "other", g))


def _family_order(families: Iterable[Any]) -> list[str]:
    present = _ordered(families)
    return sorted(present, key=lambda f: (not str(f).startswith("geom"), present.index(f)))


@_styled
def prosody_groups_figure(
    *,
    prosody_groups: pd.DataFrame,
    per_subject: pd.DataFrame | None = None,
) -> Figure:
    """F7: negative vs other per metric; one panel per metric family (geometric left), own y per metric.

    With ``per_subject`` (columns ``subject metric group value``; other columns are averaged over) the
    boxes summarise subjects, drawn as points joined across groups; otherwise they summarise the rows
    of ``prosody_groups`` (one per model × layer).
    """
    _require(prosody_groups, ["model", "layer", "metric", "family", "group", "mean"], table="prosody_groups")
    pg = prosody_groups.copy()
    pg["group"] = pg["group"].astype(str)
    groups = _group_order(pg["group"])
    families = _family_order(pg["family"])
    fam_metrics = {f: _ordered(pg.loc[pg["family"] == f, "metric"]) for f in families}
    if per_subject is not None:
        _require(per_subject, ["subject", "metric", "group", "value"], table="per_subject")
        units = (
            per_subject.assign(group=per_subject["group"].astype(str))
            .groupby(["metric", "group", "subject"], sort=True)["value"]
            .mean()
            .rename("v")
            .reset_index()
            .rename(columns={"subject": "unit"})
        )
        unit_name = "subjects"
    else:
        units = pg.assign(unit=pg["model"].astype(str) + " · " + pg["layer"].astype(str), v=pg["mean"])[
            ["metric", "group", "unit", "v"]
        ]
        unit_name = "models"

    fig = _new_figure(1.5 * sum(len(m) for m in fam_metrics.values()) + 1.2, 3.2)
    subfigs = np.atleast_1d(
        fig.subfigures(1, len(families), width_ratios=[len(fam_metrics[f]) for f in families])
    )
    for sf, family in zip(subfigs, families, strict=True):
        sf.set_facecolor("white")
        sf.suptitle(f"{family} metrics")
        axes = np.atleast_1d(sf.subplots(1, len(fam_metrics[family]), squeeze=False)).ravel()
        for ax, metric in zip(axes, fam_metrics[family], strict=True):
            ax.set_gid(f"prosody|{family}|{metric}")
            mu = units[units["metric"] == metric]
            data = [mu.loc[mu["group"] == g, "v"].dropna().to_numpy(dtype=float) for g in groups]
            ax.boxplot(
                data,
                tick_labels=groups,
                widths=0.55,
                showfliers=False,
                medianprops={"color": "black"},
                patch_artist=True,
                boxprops={"facecolor": "white", "edgecolor": "black"},
            )
            for box, g in zip(ax.patches, groups, strict=False):
                box.set_facecolor(GROUP_COLOURS.get(g, "#BBBBBB"))
                box.set_alpha(0.35)
            # paired units: the same subject/model in both groups is joined by a line
            wide = mu.pivot_table(index="unit", columns="group", values="v", aggfunc="mean").reindex(
                columns=groups
            )
            jitter = np.linspace(-0.12, 0.12, max(len(wide), 1))
            xs = np.arange(1, len(groups) + 1)[None, :] + jitter[:, None]
            for k, (_, row) in enumerate(wide.iterrows()):
                ax.plot(xs[k], row.to_numpy(dtype=float), color="#7f7f7f", lw=0.5, alpha=0.6, zorder=3)
            for gi, g in enumerate(groups):
                ax.scatter(
                    xs[:, gi],
                    wide[g].to_numpy(dtype=float),
                    s=9,
                    color=GROUP_COLOURS.get(g, "#555555"),
                    edgecolor="black",
                    lw=0.3,
                    zorder=4,
                    gid=f"points|{metric}|{g}",
                )
            ax.set_title(metric)
            ax.tick_params(axis="x", rotation=0)
        axes[0].set_ylabel(f"similarity (points: {unit_name})")
    fig.suptitle("Negative vs other prosody")
    return fig


def plot_prosody_groups(
    *,
    prosody_groups: pd.DataFrame,
    per_subject: pd.DataFrame | None,
    out: str | Path,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """F7, written to ``out``; see :func:`prosody_groups_figure`."""
    return _save(prosody_groups_figure(prosody_groups=prosody_groups, per_subject=per_subject), out, dpi)


# --------------------------------------------------------------------------------------------------
# F8 TNC


@_styled
def tnc_figure(
    *,
    tnc: pd.DataFrame,
    null_overlap: np.ndarray | None = None,
    observed_overlap: float | None = None,
    tau: float = 0.5,
) -> Figure:
    """F8: per-modality label consistency, TNC_label with threshold τ, TNC_overlap, and the overlap null."""
    _require(
        tnc,
        [
            "sentence_id",
            "provisional_label",
            "c_acoustic",
            "c_eeg",
            "c_model",
            "tnc_label",
            "tnc_overlap",
            "group",
        ],
        table="tnc",
    )
    labels = _group_order(tnc["provisional_label"].astype(str))
    fig = _new_figure(11.0, 3.0)
    ax_c, ax_lab, ax_ov, ax_null = fig.subplots(1, 4)

    modalities = [("c_acoustic", "acoustic"), ("c_eeg", "EEG"), ("c_model", "model")]
    width = 0.8 / max(len(labels), 1)
    for li, lab in enumerate(labels):
        rows = tnc[tnc["provisional_label"].astype(str) == lab]
        data = [rows[c].dropna().to_numpy(dtype=float) for c, _ in modalities]
        pos = np.arange(len(modalities)) + (li - (len(labels) - 1) / 2) * width
        bp = ax_c.boxplot(
            data,
            positions=pos,
            widths=width * 0.9,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "black"},
            manage_ticks=False,
        )
        for box in bp["boxes"]:
            box.set_facecolor(GROUP_COLOURS.get(lab, "#BBBBBB"))
            box.set_alpha(0.6)
    ax_c.set_xticks(range(len(modalities)), [n for _, n in modalities])
    ax_c.set_ylabel("neighbour label consistency c_m")
    ax_c.set_ylim(-0.05, 1.05)
    ax_c.set_title("same-label share of k neighbours")
    ax_c.legend(
        handles=[Patch(color=GROUP_COLOURS.get(lab, "#BBBBBB"), alpha=0.6, label=lab) for lab in labels],
        frameon=False,
        fontsize=6,
    )

    bins = np.linspace(0.0, 1.0, 11)
    for lab in labels:
        vals = (
            tnc.loc[tnc["provisional_label"].astype(str) == lab, "tnc_label"].dropna().to_numpy(dtype=float)
        )
        ax_lab.hist(
            vals,
            bins=bins,
            alpha=0.55,
            color=GROUP_COLOURS.get(lab, "#BBBBBB"),
            label=f"{lab} (n={len(vals)})",
        )
    ax_lab.axvline(tau, color="black", ls="--", lw=1.0, label=f"τ = {tau:g}")
    ax_lab.set_xlabel("TNC_label = min over modalities")
    ax_lab.set_ylabel("sentences")
    counts = tnc["group"].fillna("excluded").astype(str).value_counts()
    ax_lab.set_title(", ".join(f"{g}: {counts[g]}" for g in _group_order(counts.index)), fontsize=7)
    ax_lab.legend(frameon=False, fontsize=6)

    ov = tnc["tnc_overlap"].dropna().to_numpy(dtype=float)
    ax_ov.hist(ov, bins=bins, color=OKABE_ITO[4], alpha=0.7)
    ax_ov.axvline(float(np.mean(ov)) if ov.size else np.nan, color="black", lw=1.0, label="mean")
    ax_ov.set_xlabel("TNC_overlap (pairwise neighbour overlap)")
    ax_ov.set_ylabel("sentences")
    ax_ov.set_title(f"per sentence (n={ov.size})")
    ax_ov.legend(frameon=False, fontsize=6)

    null = np.asarray(null_overlap, dtype=float).ravel() if null_overlap is not None else np.array([])
    null = null[np.isfinite(null)]
    if null.size:
        ax_null.hist(
            null, bins=30, color="#BBBBBB", edgecolor="#7f7f7f", lw=0.3, label=f"null (n={null.size})"
        )
        title = "permutation null"
        if observed_overlap is not None and np.isfinite(observed_overlap):
            p = (1 + int(np.sum(null >= observed_overlap))) / (1 + null.size)
            ax_null.axvline(observed_overlap, color=OKABE_ITO[5], lw=1.5, label="observed")
            title += f", p = {p:.3g}"
        ax_null.set_title(title)
        ax_null.set_xlabel("mean TNC_overlap")
        ax_null.set_ylabel("permutations")
        ax_null.legend(frameon=False, fontsize=6)
    else:
        ax_null.text(0.5, 0.5, "no null distribution", ha="center", va="center", transform=ax_null.transAxes)
        ax_null.set_axis_off()
    fig.suptitle("Tri-modal neighbourhood consistency (TNC)")
    return fig


def plot_tnc(
    *,
    tnc: pd.DataFrame,
    null_overlap: np.ndarray | None,
    observed_overlap: float | None,
    out: str | Path,
    tau: float = 0.5,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """F8, written to ``out``; see :func:`tnc_figure`."""
    fig = tnc_figure(tnc=tnc, null_overlap=null_overlap, observed_overlap=observed_overlap, tau=tau)
    return _save(fig, out, dpi)


# --------------------------------------------------------------------------------------------------
# F9 null diagnostics

_NULL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("p_mismatch", "sentence mismatch (EEG side)"),
    ("p_shift", "seam-free shift (diagnostic)"),
    ("p_frameperm_codefaithful", "frame permutation (code-faithful)"),
)


@_styled
def null_diagnostics_figure(*, metric_rows: pd.DataFrame, alpha: float = 0.05, n_bins: int = 20) -> Figure:
    """F9: p-value histograms of the three nulls (dashed: uniform expectation) and the null z-scores."""
    _require(
        metric_rows, ["value", "null_mean", "null_sd", *(c for c, _ in _NULL_COLUMNS)], table="metric_rows"
    )
    fig = _new_figure(11.0, 2.8)
    axes = fig.subplots(1, len(_NULL_COLUMNS) + 1)
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    for ax, (col, name) in zip(axes, _NULL_COLUMNS, strict=False):
        rows = metric_rows
        if col == "p_mismatch" and "p_mismatch_min" in rows:
            # with B partners p ≥ 1/(B + 1): rows that cannot reach α would report a false 0 % rate
            rows = rows[rows["p_mismatch_min"].to_numpy(dtype=float) <= alpha]
        p = rows[col].to_numpy(dtype=float)
        p = p[np.isfinite(p)]
        ax.set_gid(f"pvalues|{col}")
        if p.size:
            ax.hist(p, bins=bins, color=OKABE_ITO[4], alpha=0.8, edgecolor="white", lw=0.3)
            ax.axhline(p.size / n_bins, color="black", ls="--", lw=0.8, label="uniform")
            ax.set_title(f"{name}\nP(p ≤ {alpha:g}) = {np.mean(p <= alpha):.1%}, n = {p.size}", fontsize=8)
            ax.legend(frameon=False, fontsize=6)
        else:
            ax.set_title(f"{name}\nno p-values", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("p-value")
    axes[0].set_ylabel("metric rows")
    ax = axes[-1]
    sd = metric_rows["null_sd"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (metric_rows["value"].to_numpy(dtype=float) - metric_rows["null_mean"].to_numpy(dtype=float)) / sd
    z = z[np.isfinite(z)]
    if z.size:
        ax.hist(z, bins=30, color=OKABE_ITO[2], alpha=0.8, edgecolor="white", lw=0.3)
        ax.axvline(0.0, color="black", lw=0.8)
    ax.set_title(f"(value − null mean) / null SD\nn = {z.size}", fontsize=8)
    ax.set_xlabel("z")
    fig.suptitle("Null-distribution diagnostics")
    return fig


def plot_null_diagnostics(
    *, metric_rows: pd.DataFrame, out: str | Path, alpha: float = 0.05, dpi: float = DEFAULT_DPI
) -> Path:
    """F9, written to ``out``; see :func:`null_diagnostics_figure`."""
    return _save(null_diagnostics_figure(metric_rows=metric_rows, alpha=alpha), out, dpi)


def lag_profile_figure(*, lag_profile: pd.DataFrame, layer_profile: pd.DataFrame) -> Figure:
    """F10: value − null against the EEG lag, per metric, for each model's best layer (held-out lag marked)."""
    _require(lag_profile, ["model", "layer", "metric", "lag_ms", "above_null", "ci_low", "ci_high"],
             table="lag_profile")
    metrics = _ordered(lag_profile["metric"])
    nrows, ncols = _grid(len(metrics), 3)
    fig = _new_figure(3.6 * ncols, 2.6 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    styles = model_styles(_ordered(lag_profile["model"]))
    for ax, metric in zip(axes, metrics, strict=False):
        prof = layer_profile[layer_profile["metric"] == metric].dropna(subset=["above_null"])
        for model, style in styles.items():
            best = prof[prof["model"] == model]
            if best.empty:
                continue
            row = best.loc[best["above_null"].idxmax()]
            lag = lag_profile[(lag_profile["model"] == model) & (lag_profile["layer"] == row["layer"])
                              & (lag_profile["metric"] == metric)].sort_values("lag_ms")
            ax.plot(lag["lag_ms"], lag["above_null"], label=f"{model} {row['layer']}", **style)
            ax.fill_between(lag["lag_ms"], lag["ci_low"], lag["ci_high"], color=style.get("color"), alpha=0.15,
                            lw=0)
            ax.axvline(float(row["lag_ms"]), color=style.get("color"), ls=":", lw=0.8)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_title(metric, fontsize=8)
        ax.set_xlabel("EEG lag (ms)")
        ax.set_ylabel("value − null")
    _hide_unused(axes, len(metrics))
    if len(metrics):
        axes[0].legend(frameon=False, fontsize=6)
    fig.suptitle("Lag sweep: alignment above the mismatch null (dotted: lag chosen on held-out subjects)")
    return fig


def plot_lag_profile(*, lag_profile: pd.DataFrame, layer_profile: pd.DataFrame, out: str | Path,
                     dpi: float = DEFAULT_DPI) -> Path:
    """F10, written to ``out``; see :func:`lag_profile_figure`."""
    return _save(lag_profile_figure(lag_profile=lag_profile, layer_profile=layer_profile), out, dpi)


# --------------------------------------------------------------------------------------------------
# F6 RDM pair


def upper_triangle_spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Spearman ρ (average ranks for ties) of the strict upper triangles, pairs with NaN dropped.

    Returns ``(rho, n_pairs)``; ρ is NaN for fewer than 3 pairs or a constant side.
    """
    from scipy.stats import rankdata

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise ValueError(f"RDMs must be square and of equal shape, got {a.shape} and {b.shape}")
    iu = np.triu_indices(a.shape[0], k=1)
    x, y = a[iu], b[iu]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return float("nan"), int(x.size)
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan"), int(x.size)
    return float(np.corrcoef(rx, ry)[0, 1]), int(x.size)


@_styled
def rdm_pair_figure(
    *, model_rdm: np.ndarray, eeg_rdm: np.ndarray, title: str = "", value_label: str = "dissimilarity"
) -> Figure:
    """F6: model and EEG RDM side by side, each on its own full data range (no clipping)."""
    rho, n = upper_triangle_spearman(model_rdm, eeg_rdm)
    fig = _new_figure(7.0, 3.4)
    axes = fig.subplots(1, 2)
    for ax, rdm, name in zip(axes, (model_rdm, eeg_rdm), ("model RDM", "EEG RDM"), strict=True):
        rdm = np.asarray(rdm, dtype=float)
        finite = rdm[np.isfinite(rdm)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        im = ax.imshow(rdm, cmap="viridis_r", vmin=lo, vmax=hi, interpolation="nearest", origin="upper")
        ax.set_title(name)
        ax.set_xlabel("frame")
        ax.set_ylabel("frame")
        fig.colorbar(im, ax=ax, shrink=0.8, label=value_label)
    head = f"{title}\n" if title else ""
    fig.suptitle(f"{head}Spearman ρ (upper triangles) = {_fmt(rho, 3)}, n = {n} pairs")
    return fig


def plot_rdm_pair(
    *, model_rdm: np.ndarray, eeg_rdm: np.ndarray, out: str | Path, title: str = "", dpi: float = DEFAULT_DPI
) -> Path:
    """F6, written to ``out``; see :func:`rdm_pair_figure`."""
    return _save(rdm_pair_figure(model_rdm=model_rdm, eeg_rdm=eeg_rdm, title=title), out, dpi)
