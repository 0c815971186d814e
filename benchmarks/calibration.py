"""Calibration of the study's nulls through the production path: false-positive rate and power.

Each simulated study shares one set of model activations across subjects (every subject hears the same
stimuli) and draws only the EEG independently, then goes through exactly the functions the workflow
calls: ``models.cache.write_layer`` → ``features.model_features`` (per-sentence PCA-z) → segments →
``align.align_subject`` (frame means at the stack's rate) → ``analysis.metric_job`` (every metric, the
EEG-side mismatch null and the seam-free shift null) → ``aggregate.paired_subject_means`` +
``stats.group_summary`` (the sign-flip test of the layer profile).

Sentence lengths come from the real Alice spans (``AliceChapterOne-EEG.csv``: 0.5–23 s) and from
ds004408's 2–6 s; model and EEG are Gaussian-smoothed noise (σ in model frames) with a shared onset
transient on both sides. Under H0 the EEG is independent of the model; for power, the EEG carries the
leading principal components of one layer at two SNRs (``power_low``, ``power_high``).

    python benchmarks/calibration.py --seed 1 --n-sim 500        # writes benchmarks/out/calibration.tsv (+ .png)

Columns: metric, level (sentence | group), null (mismatch | shift), onset (shared onset transient: yes | no),
n_sim (H0 tests), fpr, power_low, power_high.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hearlike.aggregate import paired_subject_means
from hearlike.align import align_subject
from hearlike.analysis import metric_job
from hearlike.features import model_features
from hearlike.io import save_npz_dict, sentence_key
from hearlike.models.cache import write_layer, write_manifest
from hearlike.stats import group_summary

ROOT = Path(__file__).resolve().parents[1]
ALICE_CSV = ROOT / "tests" / "data" / "nm000180" / "sourcedata" / "AliceChapterOne-EEG.csv"
METRICS = ("rsa_spearman", "rsa_pearson", "rsa_kendall", "cka_linear", "cka_rbf", "dcor", "hsic_rbf", "rv2", "gcmi")
SETTINGS = {"cka_rbf": {"bandwidth": "median"}, "hsic_rbf": {"bandwidth": "median"}, "dcor": {"exponent": 1.0},
            "gcmi": {"bias_correct": True}}
EEG_SFREQ = 500.0
N_CHANNELS = 32
N_COMPONENTS = 20
ONSET_TAU_S = 0.15


def alice_durations(csv: Path = ALICE_CSV) -> np.ndarray:
    """Durations (s) of the (segment, sentence) spans of the real Alice word table."""
    words = pd.read_csv(csv)
    spans = words.groupby(["Segment", "Sentence"]).agg(onset=("onset", "min"), offset=("offset", "max"))
    return (spans["offset"] - spans["onset"]).to_numpy(float)


def draw_durations(rng: np.random.Generator, n: int, source: str) -> np.ndarray:
    """n sentence durations: the real Alice spans (resampled) or ds004408-like 2–6 s."""
    if source == "alice":
        return rng.choice(alice_durations(), size=n, replace=True)
    return rng.uniform(2.0, 6.0, size=n)


def smooth(rng: np.random.Generator, n: int, dims: int, sigma: float) -> np.ndarray:
    """(n × dims) stationary Gaussian noise: white noise smoothed along time with a Gaussian of SD ``sigma``
    samples (in the frequency domain, on a padded span so that the ends do not wrap into each other)."""
    if sigma <= 0:
        return rng.standard_normal((n, dims))
    pad = int(np.ceil(4 * sigma))
    m = n + 2 * pad
    x = rng.standard_normal((m, dims))
    freq = np.fft.rfftfreq(m)
    gain = np.exp(-2.0 * (np.pi * freq * sigma) ** 2)[:, None]
    return np.fft.irfft(np.fft.rfft(x, axis=0) * gain, n=m, axis=0)[pad:pad + n] * np.sqrt(2 * np.sqrt(np.pi) * sigma)


def simulate(*, seed: int, work: Path, rate_hz: float, sigma_frames: float, n_subjects: int, n_sentences: int,
             durations: str, gain: float, onset: float, metrics: Sequence[str], nulls: dict,
             eeg_components: int = 10, n_layers: int = 2) -> dict[str, pd.DataFrame]:
    """One simulated study; returns per metric its sentence-level table and the group test at lag 0.

    The layers are independent of each other (so under H0 each gives its own test); ``gain`` plants
    ``llm.01`` only.
    """
    rng = np.random.default_rng(seed)
    dur = draw_durations(rng, n_sentences, durations)
    sids = list(range(1, n_sentences + 1))
    dims = 48
    act = work / "activations"
    layers = [f"llm.{i:02d}" for i in range(n_layers)]
    onset_dir = rng.standard_normal(dims)
    states: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {layer: {} for layer in layers}
    for sid, d in zip(sids, dur, strict=True):
        n = max(1, int(np.floor(d * rate_hz)))
        t = np.arange(n) / rate_hz
        times = np.stack([t, t + 1.0 / rate_hz], axis=1)
        for layer in layers:
            x = smooth(rng, n, dims, sigma_frames) * 3.0
            x += onset * 3.0 * np.exp(-t / ONSET_TAU_S)[:, None] * onset_dir[None, :]
            states[layer][sid] = (x.astype(np.float32), times)
    entries = []
    for layer in layers:
        sha = write_layer(act / f"{layer}.safetensors", states[layer], store_dtype="float32")
        entries.append({"name": layer, "file": f"{layer}.safetensors", "sha256": sha, "rate_hz": rate_hz})
    write_manifest(act, {"key": {"model": "sim"}, "layers": entries})
    feats = work / "features" / "sim.npz"
    model_features(activations_dir=act, out=feats, n_components=N_COMPONENTS)
    # the planted signal (power only): the planted layer's leading PCs, held within each frame
    planted = {sid: states["llm.01"][sid][0] for sid in sids}
    mix_onset = rng.standard_normal(N_CHANNELS)
    aligned = []
    for s in range(n_subjects):
        mixing = rng.standard_normal((N_CHANNELS, N_CHANNELS))
        arrays = {}
        for sid, d in zip(sids, dur, strict=True):
            n = round((d + 1.0) * EEG_SFREQ)
            t = np.arange(n) / EEG_SFREQ
            sig = smooth(rng, n, N_CHANNELS, sigma_frames / rate_hz * EEG_SFREQ) @ mixing
            sig /= sig.std()
            sig += onset * np.exp(-t / ONSET_TAU_S)[:, None] * mix_onset[None, :]
            if gain > 0:
                y = planted[sid]
                y = (y - y.mean(0)) / (y.std(0) + 1e-12)
                frame = np.minimum((t * rate_hz).astype(int), len(y) - 1)
                drive = y[frame][:, :N_CHANNELS] @ rng.standard_normal((min(dims, N_CHANNELS), N_CHANNELS))
                drive[t >= d] = 0.0
                sig += gain * drive / drive.std()
            n_in = round(d * EEG_SFREQ)
            arrays[sentence_key(sid)] = sig[:n_in].T.astype(np.float32)
            arrays[sentence_key(sid) + ".post"] = sig[n_in:].T.astype(np.float32)
        seg = work / "eeg" / f"sub-{s:02d}_segments.npz"
        save_npz_dict(seg, arrays, meta={"ch_names": [f"E{c}" for c in range(N_CHANNELS)], "sfreq": EEG_SFREQ,
                                         "subject": f"{s:02d}", "sentence_ids": sids, "post_s": 1.0})
        out = work / "aligned" / f"sub-{s:02d}.npz"
        align_subject(segments=seg, features=feats, out=out, lags_ms=[0])
        aligned.append(out)
    results = {}
    for metric in metrics:
        table = metric_job(metric=metric, model="sim", aligned=aligned, features=feats,
                           settings=SETTINGS.get(metric, {}), nulls=nulls, per_electrode=False, seed=seed,
                           out_values=work / "metrics" / f"{metric}.tsv",
                           out_electrodes=work / "metrics" / f"{metric}_electrodes.tsv",
                           eeg_components=eeg_components if metric == "gcmi" else None)
        subj = paired_subject_means(table, keys=["model", "layer", "metric", "lag_ms"], min_sentences=3)
        group = group_summary(subj.assign(baseline=subj["value"] - subj["diff"]),
                              keys=("model", "layer", "metric", "lag_ms"), n_perm=10000, n_boot=200, seed=seed)
        results[metric] = pd.concat([table.assign(level="sentence"),
                                     group.rename(columns={"p_signflip": "p_group"}).assign(level="group")],
                                    ignore_index=True)
    return results


def run(*, seed: int, n_sim: int, metrics: Sequence[str], n_subjects: int = 6, n_sentences: int = 24,
        n_layers: int = 10, snr: tuple[float, float] = (0.1, 0.25), n_shifts: int = 50,
        sigma_grid: Sequence[float] = (1, 4, 12), progress: Path | None = None) -> pd.DataFrame:
    """FPR of each null at the sentence and group level over ``n_sim`` H0 tests, power at two SNRs.

    A simulated study gives ``n_layers`` independent layers, each one test under H0, so ``n_sim`` tests
    take ``n_sim / n_layers`` studies. Studies cycle through smoothness σ (model frames), frame rate with
    sentence lengths (12.5 Hz with the real Alice spans, 25 and 50 Hz with ds004408's 2–6 s) and the shared
    onset transient (on in half of them; reported apart as ``onset``). Power studies plant ``llm.01``.
    ``progress`` (a path) gets the table so far after every study.
    """
    nulls = {"sentence_mismatch": 19, "lag_sweep_mismatch": 5, "circular_shift": n_shifts, "min_shift_s": 1.0,
             "frame_permutation": 0}
    hits: dict[tuple[str, str, str, str], dict[str, list[float]]] = {}

    def add(key: tuple[str, str, str, str], kind: str, values: pd.Series) -> None:
        hits.setdefault(key, {"fpr": [], "power_low": [], "power_high": []})[kind].extend(
            (values.dropna() <= 0.05).astype(float).tolist())

    # the real Alice spans (up to 23 s) on the 12.5 Hz LLM timebase; ds004408's 2–6 s at 25 and 50 Hz
    rates = [(12.5, "alice"), (25.0, "ds004408"), (50.0, "ds004408")]
    conditions = [(sig, rate, src, onset) for onset in (0.0, 1.0) for sig in sigma_grid for rate, src in rates]
    n_studies = int(np.ceil(n_sim / n_layers))
    n_power = max(3, n_studies // 6)
    fpr_plan = [("fpr", 0.0, i) for i in range(n_studies)]
    power_plan = [(kind, gain, i) for i in range(n_power) for kind, gain in (("power_low", snr[0]),
                                                                             ("power_high", snr[1]))]
    # interleaved, so that a partial run (the progress table) already has both kinds
    every = max(1, len(fpr_plan) // max(1, len(power_plan)))
    plan = []
    for j, item in enumerate(fpr_plan):
        plan.append(item)
        if j % every == every - 1 and power_plan:
            plan.append(power_plan.pop(0))
    plan += power_plan
    for kind, gain, i in plan:
        sig, rate, src, onset = conditions[i % len(conditions)]
        with tempfile.TemporaryDirectory() as tmp:
            res = simulate(seed=seed * 100003 + i + (0 if kind == "fpr" else 50000 + int(gain * 1000)),
                           work=Path(tmp), rate_hz=rate, sigma_frames=sig, n_subjects=n_subjects,
                           n_sentences=n_sentences, durations=src, gain=gain, onset=onset, metrics=metrics,
                           nulls=nulls, n_layers=n_layers)
        tag = "yes" if onset else "no"
        for metric, table in res.items():
            sent = table[table["level"] == "sentence"]
            grp = table[table["level"] == "group"]
            if kind != "fpr":  # power: the planted layer only
                sent, grp = sent[sent["layer"] == "llm.01"], grp[grp["layer"] == "llm.01"]
            # sentence level: per (subject, layer) the shortest sentence whose p can reach 0.05 (19 partners)
            full = sent[sent["n_mismatch"] == nulls["sentence_mismatch"]]
            pick = full.sort_values("n_frames").groupby(["subject", "layer"]).head(1)
            add((metric, "sentence", "mismatch", tag), kind, pick["p_mismatch"])
            pick = sent.dropna(subset=["p_shift"]).groupby(["subject", "layer"]).head(1)
            add((metric, "sentence", "shift", tag), kind, pick["p_shift"])
            add((metric, "group", "mismatch", tag), kind, grp["p_group"])
        if progress is not None:
            _table(hits).to_csv(progress, sep="\t", index=False, float_format="%.4g")
    return _table(hits)


def _table(hits: dict[tuple[str, str, str, str], dict[str, list[float]]]) -> pd.DataFrame:
    """One row per (metric, level, null, onset): tests under H0, their rejection rate, power at two SNRs."""
    out = []
    for (metric, level, null, tag), v in hits.items():
        out.append(dict(metric=metric, level=level, null=null, onset=tag, n_sim=len(v["fpr"]),
                        fpr=np.mean(v["fpr"]) if v["fpr"] else np.nan,
                        power_low=np.mean(v["power_low"]) if v["power_low"] else np.nan,
                        power_high=np.mean(v["power_high"]) if v["power_high"] else np.nan))
    return pd.DataFrame(out).sort_values(["level", "null", "onset", "metric"], kind="stable")


def plot(table: pd.DataFrame, out: Path) -> None:
    """FPR per metric and null with the [0.03, 0.07] band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.5))
    labels = [f"{r.metric} {r.level}/{r.null}/onset:{r.onset}" for r in table.itertuples()]
    ax.bar(range(len(table)), table["fpr"], color="tab:blue")
    ax.axhspan(0.03, 0.07, color="tab:green", alpha=0.2, label="[0.03, 0.07]")
    ax.axhline(0.05, color="k", lw=0.8)
    ax.set_xticks(range(len(table)), labels, rotation=90, fontsize=6)
    ax.set_ylabel("false-positive rate (α = 0.05)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-sim", type=int, default=500)
    ap.add_argument("--metrics", nargs="+", default=list(METRICS))
    ap.add_argument("--n-layers", type=int, default=10, help="independent layers (H0 tests) per simulated study")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "calibration.tsv")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = run(seed=args.seed, n_sim=args.n_sim, metrics=args.metrics, n_layers=args.n_layers,
                progress=args.out.with_suffix(".partial.tsv"))
    table.to_csv(args.out, sep="\t", index=False, float_format="%.4g")
    plot(table, args.out.with_suffix(".png"))
    print(table.to_string(index=False))
    print(f"{args.n_sim} H0 studies in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
