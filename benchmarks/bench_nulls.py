"""Benchmark of the null draws of one subject_metric unit: scoring re-indexed copies vs re-indexed matrices.

One unit = what :func:`hearlike.analysis.subject_metric` does for one subject, one model timebase and one
metric: 24 sentences (T = 100–120 frames at 25 Hz, ≈ 110 on average) × 8 layers × 50 circular shifts
(minimum shift 1 s), EEG 31 channels, model 20 PCs. Two cases per metric:

* **shift draws**: only the 24 × 8 × 50 circular-shift scores. Old path: per (sentence, layer)
  ``nulls.null_scores(batch_score=...)``, i.e. ``compute_battery`` on ``Y[idx]`` in chunks of 64 (every
  draw rebuilds the model side); new path: one ``compute_battery_reindexed(X, Y (L,T,q), idx (L,B,T))``
  per sentence.
* **unit table**: the whole per-layer tables, observed values and mismatch nulls included (10 partners,
  unchanged between the paths), plus 100 frame permutations for rsa_spearman (the code-faithful column).
  Old path: ``nulls.sentence_null_table(batch_score=...)`` per layer, as subject_metric did before; new
  path: ``nulls.layer_sentence_null_tables(layer_indexed_score=...)``, as subject_metric does now.

The paths take turns (best of ``--repeats``) and their numbers are compared: the script exits non-zero
if they differ by more than 1e-9 (NaN must match NaN).

    .venv/bin/python benchmarks/bench_nulls.py [--quick] [--metrics hsic_rbf dcor] [--threads 1]

Writes benchmarks/out/bench_nulls.tsv and .json (machine, load average, versions, settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

import hearlike
from hearlike import nulls
from hearlike.metrics import compute_battery, compute_battery_reindexed
from hearlike.seeding import derive_seed

OUT_DIR = Path(__file__).resolve().parent / "out"
AGREE_TOL = 1e-9
FRAMEPERM_METRICS = ("rsa_spearman",)  # as hearlike.analysis.FRAMEPERM_METRICS


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall-clock and CPU seconds of one call, and its result."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def unit_data(rng: np.random.Generator, args: argparse.Namespace) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """sid → (X (T, 31) smooth z-scored EEG, Y (L, T, 20) layer features drifting with depth)."""
    data = {}
    for s in range(args.sentences):
        t = int(rng.integers(args.frames - 10, args.frames + 11))
        x = np.cumsum(rng.standard_normal((t + 20, args.channels)), axis=0)[20:]
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        base = rng.standard_normal((t, args.pcs))
        y = np.empty((args.layers, t, args.pcs))
        for layer in range(args.layers):
            base = 0.9 * base + 0.45 * rng.standard_normal((t, args.pcs))
            y[layer] = base
        data[s + 1] = (x, y)
    return data


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a − b| over finite entries; inf when the NaN patterns differ."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    fin = np.isfinite(a)
    return float(np.max(np.abs(a[fin] - b[fin]), initial=0.0))


def run_metric(metric: str, data: dict, args: argparse.Namespace) -> list[dict[str, Any]]:
    seeds = [derive_seed(args.seed, "metric", "bench", metric, "sub-01", f"encoder.{li:02d}")
             for li in range(args.layers)]  # fmt: skip

    def batch_score(X: np.ndarray, Ys: np.ndarray) -> np.ndarray:
        return compute_battery(X[None], Ys, metrics=[metric])[metric][0]

    def layer_indexed_score(X: np.ndarray, Ys: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return compute_battery_reindexed(X, Ys, idx, metrics=[metric])[metric]

    def shift_indices(sid: int, n_frames: int, li: int) -> np.ndarray:
        return nulls.sentence_null_indices(
            n_frames=n_frames, frame_rate_hz=args.rate, seed=seeds[li], sentence_id=sid,
            n_shifts=args.shifts, n_perm_codefaithful=0,
        )[0]  # fmt: skip

    def old_draws() -> np.ndarray:
        return np.stack([
            np.stack([nulls.null_scores(eeg=x, model=y[li], indices=shift_indices(sid, len(x), li),
                                        batch_score=batch_score) for li in range(args.layers)])
            for sid, (x, y) in data.items()
        ])  # fmt: skip

    def new_draws() -> np.ndarray:
        return np.stack([
            layer_indexed_score(x, y, np.stack([shift_indices(sid, len(x), li) for li in range(args.layers)]))
            for sid, (x, y) in data.items()
        ])  # fmt: skip

    common = dict(
        eeg={sid: x for sid, (x, _) in data.items()}, frame_rate_hz=args.rate, n_shifts=args.shifts,
        n_mismatch=args.mismatch, n_perm_codefaithful=args.perms if metric in FRAMEPERM_METRICS else 0,
    )  # fmt: skip

    def old_table() -> pd.DataFrame:
        return pd.concat([
            nulls.sentence_null_table(model={sid: y[li] for sid, (_, y) in data.items()}, seed=seeds[li],
                                      batch_score=batch_score, **common)
            for li in range(args.layers)
        ], ignore_index=True)  # fmt: skip

    def new_table() -> pd.DataFrame:
        tables = nulls.layer_sentence_null_tables(
            model={sid: y for sid, (_, y) in data.items()}, seeds=seeds, batch_score=batch_score,
            layer_indexed_score=layer_indexed_score, **common,
        )  # fmt: skip
        return pd.concat(tables, ignore_index=True)

    n_draws = args.sentences * args.layers * args.shifts
    rows = []
    for case, fns in (("shift draws", (old_draws, new_draws)), ("unit table", (old_table, new_table))):
        best: dict[str, tuple[float, float, Any]] = {}
        for _ in range(args.repeats):
            for name, fn in zip(("old", "new"), fns, strict=True):
                t, c, out = timed(fn)
                if name not in best or t < best[name][0]:
                    best[name] = (t, c, out)
        (t_old, c_old, r_old), (t_new, c_new, r_new) = best["old"], best["new"]
        if case == "unit table":
            diff = max_diff(
                r_old.select_dtypes("number").to_numpy(), r_new.select_dtypes("number").to_numpy()
            )
            assert list(r_old.columns) == list(r_new.columns)
        else:
            diff = max_diff(r_old, r_new)
        rows.append(dict(metric=metric, case=case, old_s=t_old, new_s=t_new, speedup=t_old / t_new,
                         old_cpu_s=c_old, new_cpu_s=c_new, cpu_speedup=c_old / c_new, n_shift_draws=n_draws,
                         max_abs_diff=diff))  # fmt: skip
        print(f"{metric:14s} {case:12s} old {t_old:8.2f} s  new {t_new:7.3f} s  ×{t_old / t_new:6.1f} "
              f"(CPU ×{c_old / c_new:5.1f})  max|Δ| {diff:.1e}", flush=True)  # fmt: skip
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", nargs="+", default=["hsic_rbf", "rsa_spearman", "dcor", "gcmi"])
    ap.add_argument("--sentences", type=int, default=24)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--frames", type=int, default=110, help="mean T; sentences have T ± 10")
    ap.add_argument("--rate", type=float, default=25.0, help="frame rate (Hz): minimum shift 1 s = 25 frames")
    ap.add_argument("--shifts", type=int, default=50)
    ap.add_argument("--mismatch", type=int, default=10)
    ap.add_argument("--perms", type=int, default=100, help="frame permutations (rsa_spearman only)")
    ap.add_argument("--channels", type=int, default=31)
    ap.add_argument("--pcs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--quick", action="store_true", help="6 sentences × 3 layers × 20 shifts, 1 repeat")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "bench_nulls")
    args = ap.parse_args()
    if args.quick:
        args.sentences, args.layers, args.shifts, args.perms, args.repeats = 6, 3, 20, 20, 1
    torch.set_num_threads(args.threads)
    data = unit_data(np.random.default_rng(args.seed), args)
    rows = []
    with threadpool_limits(args.threads):
        for metric in args.metrics:
            rows.extend(run_metric(metric, data, args))
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".tsv"), sep="\t", index=False)
    meta = dict(
        machine=platform.platform(), processor=platform.processor(), cpus=os.cpu_count(),
        load_average=os.getloadavg(), python=sys.version.split()[0], numpy=np.__version__,
        torch=torch.__version__, hearlike=hearlike.__version__,
        settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    )  # fmt: skip
    args.out.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    bad = table[~(table["max_abs_diff"] <= AGREE_TOL)]
    if len(bad):
        print(f"paths disagree by more than {AGREE_TOL}:\n{bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
