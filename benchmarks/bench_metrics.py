"""Benchmark of the RSA engine against the ways its users would otherwise compute RSA-Spearman.

(a) one (subject, sentence) battery: 60 electrodes (1 feature per frame → |x_i − x_j| RDM) × 32 layers
    (20 PCs → correlation-distance RDM), T = 300 frames (44,850 RDM entries);
(b) a study-scale block: 8 subjects × 10 sentences × 60 electrodes against 3 models × 32 layers, where
    the baselines are called once per (subject, model, sentence) and ours prepares (builds and ranks)
    every model RDM once per sentence for all subjects and every EEG RDM once for all models.

Baselines: a per-pair loop over scipy (pdist + spearmanr), rsatoolbox (calc_rdm + compare 'spearman')
and a vectorised torch baseline (tie-aware ranks, one batch per call, no rank reuse). Every baseline's
values are checked against ours. Slow baselines can be timed on a subset and extrapolated linearly (the
work per pair / per unit is the same); the output says where. Also: Kendall τ-b per pair against
scipy.stats.kendalltau, and the battery of the 12 other metrics for (a).

    .venv/bin/python benchmarks/bench_metrics.py [--quick] [--device cuda] [--threads 1]

Every method runs with ``--threads`` torch/BLAS threads (default 1, as the workflow runs its jobs; on a
shared machine extra threads mostly spin). Writes benchmarks/out/bench_metrics.tsv and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as ss
import torch
from rsatoolbox.data import Dataset
from rsatoolbox.rdm import calc_rdm, compare
from scipy.spatial.distance import pdist
from threadpoolctl import threadpool_limits

import hearlike
from hearlike.metrics import METRICS, compute_battery, prepare_rdm_side, rdm_vectors, rsa_from_prepared
from hearlike.metrics import rdm as rdm_mod

OUT_DIR = Path(__file__).resolve().parent / "out"
AGREE_TOL = 1e-6
TARGETS = {("a", "scipy loop"): 50.0, ("a", "rsatoolbox"): 2.0, ("b", "rsatoolbox"): 10.0}


@dataclass
class Row:
    """One timed method in one case."""

    case: str
    method: str
    seconds: float
    cpu_seconds: float
    pairs: int
    measured_fraction: float
    max_abs_diff: float
    speedup_of_ours: float = float("nan")
    cpu_speedup_of_ours: float = float("nan")
    target: float = float("nan")
    note: str = ""


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall-clock and CPU seconds of one call, and its result."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float, Any]]:
    """Best-of-``repeats`` (wall, cpu, result) per method, the methods taking turns within each repeat
    so that the load of a shared machine changes under all of them alike."""
    best: dict[str, tuple[float, float, Any]] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t, c, out = timed(fn)
            if name not in best or t < best[name][0]:
                best[name] = (t, c, out)
    return best


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------- synthetic data (seeded)
def eeg_like(rng: np.random.Generator, n_electrodes: int, n_frames: int, n_features: int) -> np.ndarray:
    """Smooth, z-scored signals (autocorrelated like band-limited EEG), shape (C, T, p)."""
    x = np.cumsum(rng.standard_normal((n_electrodes, n_frames + 20, n_features)), axis=1)[:, 20:]
    x -= x.mean(axis=1, keepdims=True)
    return x / x.std(axis=1, keepdims=True)


def layers_like(rng: np.random.Generator, n_layers: int, n_frames: int, n_pcs: int) -> np.ndarray:
    """Layer features drifting with depth around a shared latent, shape (L, T, q)."""
    base = rng.standard_normal((n_frames, n_pcs))
    out = np.empty((n_layers, n_frames, n_pcs))
    for layer in range(n_layers):
        base = 0.9 * base + 0.45 * rng.standard_normal((n_frames, n_pcs))
        out[layer] = base
    return out


# ---------------------------------------------------------------- the RSA-Spearman implementations
def ours(x: np.ndarray, y: np.ndarray, device: str) -> np.ndarray:
    a = prepare_rdm_side(x, device=device)
    b = prepare_rdm_side(y, device=device)
    r = rsa_from_prepared(a, b, "spearman")
    sync(device)
    return r


def scipy_pairs(x: np.ndarray, y: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """What a per-pair user writes: both RDMs and spearmanr for every (electrode, layer) pair."""
    out = []
    for i, j in pairs:
        rx = pdist(x[i], "cityblock" if x.shape[2] == 1 else "correlation")
        ry = pdist(y[j], "correlation")
        out.append(ss.spearmanr(rx, ry).statistic)
    return np.array(out)


def rsatoolbox_unit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rsatoolbox as documented: RDMs objects for both sides, then compare(..., 'spearman').

    For one feature rsatoolbox has no |x_i − x_j| RDM; its squared Euclidean distance is a monotone
    transform of it, which leaves Spearman unchanged.
    """
    method = "euclidean" if x.shape[2] == 1 else "correlation"
    rx = calc_rdm([Dataset(e) for e in x], method=method)
    ry = calc_rdm([Dataset(layer) for layer in y], method="correlation")
    return compare(rx, ry, method="spearman")


def torch_unit(x: np.ndarray, y: np.ndarray, device: str) -> np.ndarray:
    """Vectorised torch baseline: both sides' RDMs built and ranked (tie-aware, torch.sort) per call."""
    xt = torch.as_tensor(x, dtype=torch.float64, device=device)
    yt = torch.as_tensor(y, dtype=torch.float64, device=device)
    za = rdm_mod._rank_rows_torch(rdm_vectors(xt), False, True, False).standardised
    zb = rdm_mod._rank_rows_torch(rdm_vectors(yt), False, True, False).standardised
    r = (za @ zb.T).cpu().numpy()
    sync(device)
    return r


# ---------------------------------------------------------------- cases
def case_a(args: argparse.Namespace, rng: np.random.Generator) -> tuple[list[Row], dict]:
    n_el, n_layers, n_frames = args.electrodes, args.layers, args.frames
    x = eeg_like(rng, n_el, n_frames, args.eeg_features)
    y = layers_like(rng, n_layers, n_frames, args.pcs)
    n_pairs = n_el * n_layers
    rows: list[Row] = []

    ours(x[:2], y[:2], args.device)  # warm-up (imports, allocator, CUDA context)
    torch_unit(x[:2], y[:2], args.device)
    k = min(n_pairs, args.scipy_pairs)
    flat = np.linspace(0, n_pairs - 1, k).round().astype(int)
    pairs = [(int(f) // n_layers, int(f) % n_layers) for f in flat]
    torch_name = "torch per call (no rank reuse)"
    res = interleaved({
        "ours": lambda: ours(x, y, args.device),
        "rsatoolbox": lambda: rsatoolbox_unit(x, y),
        torch_name: lambda: torch_unit(x, y, args.device),
    }, args.repeats)  # fmt: skip
    t_ours, c_ours, r_ours = res["ours"]
    rows.append(Row("a", "ours", t_ours, c_ours, n_pairs, 1.0, 0.0))
    t, c, r = timed(lambda: scipy_pairs(x, y, pairs))
    diff = float(np.max(np.abs(r - np.array([r_ours[i, j] for i, j in pairs]))))
    rows.append(Row("a", "scipy loop", t * n_pairs / k, c * n_pairs / k, n_pairs, k / n_pairs, diff,
                    note=f"timed {k} of {n_pairs} pairs, extrapolated linearly"))  # fmt: skip
    for name in ("rsatoolbox", torch_name):
        t, c, r = res[name]
        rows.append(Row("a", name, t, c, n_pairs, 1.0, float(np.max(np.abs(r - r_ours)))))

    # Kendall τ-b per pair: ours (ranks prepared once per side) vs scipy.stats.kendalltau on the RDMs
    kk = min(n_pairs, args.kendall_pairs)
    sub_x, sub_y = x[: max(1, kk // n_layers + 1)], y
    kpairs = [(i, j) for i in range(sub_x.shape[0]) for j in range(n_layers)][:kk]

    def ours_kendall() -> np.ndarray:
        a = prepare_rdm_side(sub_x, methods=("kendall",), device=args.device)
        b = prepare_rdm_side(sub_y, methods=("kendall",), device=args.device)
        return rsa_from_prepared(a, b, "kendall")

    t_k, c_k, rk = timed(ours_kendall)
    n_k = sub_x.shape[0] * n_layers
    rx = [pdist(e, "cityblock") for e in sub_x]
    ry = [pdist(layer, "correlation") for layer in sub_y]
    t, c, r = timed(lambda: np.array([ss.kendalltau(rx[i], ry[j]).statistic for i, j in kpairs]))
    diff = float(np.max(np.abs(r - np.array([rk[i, j] for i, j in kpairs]))))
    rows.append(
        Row("a-kendall", "ours", t_k / n_k, c_k / n_k, 1, 1.0, 0.0, note="seconds per pair (incl. ranking)")
    )
    rows.append(Row("a-kendall", "scipy kendalltau", t / kk, c / kk, 1, 1.0, diff,
                    note=f"seconds per pair, mean over {kk} pairs (RDMs prebuilt)"))  # fmt: skip

    names = [m for m in METRICS if m != "rsa_kendall"]
    t, c, _ = timed(lambda: compute_battery(x, y, metrics=names, device=args.device))
    sync(args.device)
    rows.append(Row("a-battery", f"ours: {len(names)} metrics (all but Kendall)", t, c, n_pairs, 1.0, 0.0))
    info = {
        "electrodes": n_el,
        "layers": n_layers,
        "frames": n_frames,
        "rdm_entries": n_frames * (n_frames - 1) // 2,
    }
    return rows, info


def case_b(args: argparse.Namespace, rng: np.random.Generator) -> tuple[list[Row], dict]:
    n_sub, n_sent, n_models = args.subjects, args.sentences, args.models
    n_el, n_layers = args.electrodes, args.layers
    frames = rng.integers(args.frames - 50, args.frames + 51, n_sent)
    eeg = {
        (s, k): eeg_like(rng, n_el, int(frames[k]), args.eeg_features)
        for s in range(n_sub)
        for k in range(n_sent)
    }
    model = {
        (m, k): layers_like(rng, n_layers, int(frames[k]), args.pcs)
        for m in range(n_models)
        for k in range(n_sent)
    }
    units = [(s, m, k) for s in range(n_sub) for m in range(n_models) for k in range(n_sent)]
    n_pairs = len(units) * n_el * n_layers
    rows: list[Row] = []

    n_meas = min(len(units), args.baseline_units)
    pick = [units[i] for i in np.linspace(0, len(units) - 1, n_meas).round().astype(int)]
    baselines = {
        "rsatoolbox": rsatoolbox_unit,
        "torch per call (no rank reuse)": lambda a, b: torch_unit(a, b, args.device),
    }
    spent = {name: [0.0, 0.0] for name in ["ours", *baselines]}
    diffs = dict.fromkeys(baselines, 0.0)
    r_ours: dict = {}

    def ours_sentence(k: int) -> None:
        model_sides = [prepare_rdm_side(model[m, k], device=args.device) for m in range(n_models)]
        for s in range(n_sub):
            eeg_side = prepare_rdm_side(eeg[s, k], device=args.device)
            for m in range(n_models):
                r_ours[s, m, k] = rsa_from_prepared(eeg_side, model_sides[m], "spearman")
        sync(args.device)

    # sentence by sentence, ours then the baselines' picked units of that sentence: the methods share
    # the machine's load swings
    for k in range(n_sent):
        t, c, _ = timed(lambda k=k: ours_sentence(k))
        spent["ours"][0] += t
        spent["ours"][1] += c
        for name, fn in baselines.items():
            for s, m, kk in pick:
                if kk == k:
                    t, c, r = timed(lambda s=s, m=m, k=k, fn=fn: fn(eeg[s, k], model[m, k]))
                    spent[name][0] += t
                    spent[name][1] += c
                    diffs[name] = max(diffs[name], float(np.max(np.abs(r - r_ours[s, m, k]))))
    rows.append(Row("b", "ours", *spent["ours"], n_pairs, 1.0, 0.0,
                    note="model ranks reused across subjects, EEG ranks across models"))  # fmt: skip
    note = (
        "all units timed"
        if n_meas == len(units)
        else f"timed {n_meas} of {len(units)} units, extrapolated linearly"
    )
    scale = len(units) / n_meas
    for name in baselines:
        wall, cpu = spent[name]
        rows.append(
            Row("b", name, wall * scale, cpu * scale, n_pairs, n_meas / len(units), diffs[name], note=note)
        )
    info = {"subjects": n_sub, "sentences": n_sent, "models": n_models, "electrodes": n_el, "layers": n_layers,
            "frames": [int(f) for f in frames], "units": len(units)}  # fmt: skip
    return rows, info


def finish(rows: list[Row], with_targets: bool) -> None:
    """Ratios baseline time / our time within each case, and the targets (full sizes only)."""
    ours_t = {r.case: (r.seconds, r.cpu_seconds) for r in rows if r.method == "ours"}
    for r in rows:
        if r.method != "ours" and r.case in ours_t:
            r.speedup_of_ours = r.seconds / ours_t[r.case][0]
            r.cpu_speedup_of_ours = r.cpu_seconds / ours_t[r.case][1]
            if with_targets:
                r.target = TARGETS.get((r.case, r.method), float("nan"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run (~1 min)")
    p.add_argument("--device", default="cpu", help="device for ours and the torch baseline: cpu, cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eeg-features", type=int, default=1, help="features per electrode (1 → |x_i − x_j| RDM)")
    p.add_argument("--baseline-units", type=int, default=24, help="(b): units timed for each slow baseline")
    p.add_argument("--scipy-pairs", type=int, default=64, help="(a): pairs timed for the scipy loop")
    p.add_argument("--kendall-pairs", type=int, default=16)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and BLAS threads for every method (1 = how the workflow runs its jobs)",
    )
    p.add_argument("--out", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)
    sizes = dict(electrodes=60, layers=32, frames=300, pcs=20, subjects=8, sentences=10, models=3, repeats=3)
    if args.quick:
        sizes.update(frames=150, subjects=2, sentences=3, repeats=2)
        args.baseline_units = min(args.baseline_units, 6)
        args.scipy_pairs = min(args.scipy_pairs, 32)
        args.kendall_pairs = min(args.kendall_pairs, 8)
    for key, val in sizes.items():
        setattr(args, key, val)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA requested but not available", file=sys.stderr)
        return 2

    rng = np.random.default_rng(args.seed)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        rows_a, info_a = case_a(args, rng)
        rows_b, info_b = case_b(args, rng)
    rows = rows_a + rows_b
    finish(rows, with_targets=not args.quick)

    df = pd.DataFrame([asdict(r) for r in rows])
    ok_agree = bool((df["max_abs_diff"] < AGREE_TOL).all())
    met = df.dropna(subset=["target"])
    ok_targets = bool((met["speedup_of_ours"] >= met["target"]).all()) if not args.quick else None
    meta = {
        "started": started,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "device": args.device,
        "cuda_device": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "seed": args.seed,
        "eeg_features": args.eeg_features,
        "hearlike": hearlike.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "timing": "wall clock; (a) best of repeats with the methods taking turns, (b) summed over sentences with "
        "the methods taking turns per sentence; cpu_seconds = process CPU time of the same calls; targets "
        "are checked on wall-clock ratios",
        "case_a": info_a,
        "case_b": info_b,
        "all_agree_within": AGREE_TOL if ok_agree else None,
        "targets_met": ok_targets,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "bench_metrics.tsv", sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    (args.out / "bench_metrics.json").write_text(json.dumps({"meta": meta, "rows": df.to_dict("records")}, indent=1,
                                                            default=str) + "\n")  # fmt: skip

    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        show = df[["case", "method", "seconds", "cpu_seconds", "speedup_of_ours", "cpu_speedup_of_ours", "target",
                   "max_abs_diff", "note"]]  # fmt: skip
        print(show.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\n(a) {info_a}\n(b) {info_b}")
    print(
        f"load average before/after: {load_before} / {meta['loadavg_after']}; torch threads {meta['torch_threads']}"
    )
    targets = "n/a (--quick: sizes too small for the targets)" if ok_targets is None else ok_targets
    print(f"values agree within {AGREE_TOL}: {ok_agree}; speed targets met: {targets}")
    print(f"written: {args.out / 'bench_metrics.tsv'} and .json")
    return 0 if ok_agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
