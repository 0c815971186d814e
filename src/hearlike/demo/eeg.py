"""Synthetic BIDS-EEG for the bundled demo, with three planted findings (documented in README).

Generative model, per subject and run (all amplitudes in µV, written in volts):

``eeg(t) = A_s · r(t)`` (other sentences) or ``g_r · R_s · r⁺(t) + g_1 · v_s · |r_1(t)|`` (negative sentences),
plus ``b(t) + mains(t) + drift(t)``

* ``u(t)``: the planted model layer's activations, projected on their ``n_sources`` leading principal
  axes (fitted once over all sentences, so the map from model to brain is the same for every sentence),
  each source z-scored, held constant within each model frame and zero between sentences.
* ``r(t) = u(t − latency) + early_gain · u(t − early_latency)``, smoothed by a 50 ms Hann window: a
  dominant N400-like component inside 250–500 ms and a weaker N1-like one (finding ii).
* ``A_s``: smooth scalp topographies (Gaussian blobs on the real montage), one per source, with a small
  subject-specific perturbation (finding i: the response is driven by one layer of one model).
* Negative-prosody sentences (finding iii) recruit a richer but globally dominated response: the layer's
  ``negative_rich_sources`` leading components ``r⁺`` reach the scalp through their own topographies
  ``R_s`` (more model information: information-theoretic and unnormalised kernel dependence rise), and a
  strong single-source response to the magnitude of the leading component, ``g_1 · v_s · |r_1(t)|``, with a
  broad fronto-central topography ``v_s`` dominates every frame's spatial pattern without following the
  model's frame geometry, so the frame-by-frame geometry (correlation-distance RDMs) matches the model less. This is one mechanism that produces the paper's dissociation; the demo
  shows that the pipeline detects it, not that real brains work this way.
* ``b(t)``: volume-conducted 1/f ("pink") background (smooth spatial kernel, so neighbours correlate) scaled to ``snr_db`` against the signal;
  ``mains``: a ``line_freq`` sinusoid; ``drift``: a slow random walk; one channel is broken (high-variance
  noise) in every recording and marked ``bad`` in ``channels.tsv`` for every other subject only, so that
  both the dataset marks and the automatic detection are exercised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np
import pandas as pd
from mne_bids import BIDSPath, make_dataset_description, write_raw_bids
from safetensors.numpy import load_file

from hearlike.datasets.demo import DemoDataset
from hearlike.io import sentence_key
from hearlike.seeding import rng as make_rng
from hearlike.sentences import load_audio

log = logging.getLogger(__name__)
BACKGROUND_UV = 10.0  # RMS of the background at each sensor


def planted_sources(layer_file: Path, sentence_ids: Sequence[int], n_sources: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Sentence id → (sources (T × n_sources), frame times (T × 2)) from one stored layer."""
    tensors = load_file(str(layer_file))
    feats = {sid: tensors[sentence_key(sid)].astype(np.float64) for sid in sentence_ids}
    times = {sid: tensors[sentence_key(sid) + ".times"] for sid in sentence_ids}
    pooled = np.concatenate(list(feats.values()))
    mean = pooled.mean(axis=0)
    # Principal axes of the pooled activations: one fixed linear map from the layer to the sources.
    _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    proj = vt[:n_sources].T
    scores = {sid: (f - mean) @ proj for sid, f in feats.items()}
    sd = np.concatenate(list(scores.values())).std(axis=0)
    return {sid: (scores[sid] / sd, times[sid]) for sid in sentence_ids}


def scalp_patterns(montage: mne.channels.DigMontage, ch_names: Sequence[str], n: int,
                   rng: np.random.Generator, width: float = 0.045) -> np.ndarray:
    """``n`` smooth topographies (channels × n): Gaussian blobs around random electrodes, zero-mean."""
    pos = np.array([montage.get_positions()["ch_pos"][c] for c in ch_names])
    centres = pos[rng.choice(len(ch_names), size=n, replace=False)]
    d2 = ((pos[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    patterns = np.exp(-d2 / (2 * width**2)) * rng.choice([-1.0, 1.0], size=n)
    patterns -= patterns.mean(axis=0)
    return patterns / np.linalg.norm(patterns, axis=0)


def pink_noise(n_channels: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1/f noise per channel (spectral shaping of white noise)."""
    spec = np.fft.rfft(rng.standard_normal((n_channels, n_samples)), axis=1)
    f = np.fft.rfftfreq(n_samples)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n=n_samples, axis=1)
    return x / x.std(axis=1, keepdims=True)


def _hann_smooth(x: np.ndarray, n: int) -> np.ndarray:
    w = np.hanning(max(n, 3))
    w /= w.sum()
    return np.apply_along_axis(lambda c: np.convolve(c, w, mode="same"), 1, x)


def simulate_run(*, sentences: pd.DataFrame, sources: dict[int, tuple[np.ndarray, np.ndarray]], negative: set[int],
                 duration_s: float, sfreq: float, A: np.ndarray, A_rich: np.ndarray, v: np.ndarray, params: dict,
                 rng: np.random.Generator, line_freq: float, bad_index: int, conduction: np.ndarray) -> np.ndarray:
    """One run's EEG in µV (channels × samples)."""
    n_ch, n_src = A.shape
    n_rich = A_rich.shape[1]
    n = round(duration_s * sfreq)
    t = np.arange(n) / sfreq
    u = np.zeros((n_rich, n))
    speech = np.zeros(n, bool)
    is_negative = np.zeros(n, bool)
    for r in sentences.itertuples():
        s, ft = sources[r.sentence_id]
        for k in range(len(s)):
            a, b = np.searchsorted(t, r.onset_s + ft[k, 0]), np.searchsorted(t, r.onset_s + ft[k, 1])
            u[:, a:b] = s[k, :n_rich][:, None]
        a, b = np.searchsorted(t, r.onset_s), np.searchsorted(t, r.offset_s + params["latency_ms"] / 1e3)
        speech[a:b] = True
        if r.sentence_id in negative:
            is_negative[a:b] = True

    def delayed(x: np.ndarray, ms: float) -> np.ndarray:
        k = round(ms / 1e3 * sfreq)
        return np.pad(x, ((0, 0), (k, 0)))[:, :n]

    r_t = delayed(u, params["latency_ms"]) + params["early_gain"] * delayed(u, params["early_latency_ms"])
    r_t = _hann_smooth(r_t, int(0.05 * sfreq))
    neutral = A @ r_t[:n_src]
    # the single-source response follows the magnitude of the leading component (sign-less, intensity-like)
    rich = params["negative_rich_gain"] * (A_rich @ r_t) + params["negative_rank1_gain"] * np.outer(v, np.abs(r_t[0]))
    signal = np.where(is_negative, rich, neutral)

    # The configured SNR is that of the neutral response; the negative response is stronger by design.
    sig_rms = np.sqrt(np.mean(neutral[:, speech & ~is_negative] ** 2)) + 1e-12
    # planted_gain 0 is the null demo (datasets.demo_null): the same EEG with no planted response at all
    signal *= params["planted_gain"] * BACKGROUND_UV * 10 ** (params["snr_db"] / 20) / sig_rms
    # Volume conduction: 1/f sources seen through a smooth spatial kernel, plus a little sensor noise,
    # so that neighbouring electrodes correlate as in real scalp EEG.
    background = conduction @ pink_noise(n_ch, n, rng) + 0.15 * rng.standard_normal((n_ch, n))
    background *= BACKGROUND_UV / background.std(axis=1, keepdims=True)
    mains = params["line_noise_uv"] * np.sin(2 * np.pi * line_freq * t[None, :] + rng.uniform(0, 2 * np.pi, (n_ch, 1)))
    drift = np.cumsum(rng.standard_normal((n_ch, n)), axis=1) * 0.05
    eeg = signal + background + mains + drift
    eeg[bad_index] = 8 * BACKGROUND_UV * rng.standard_normal(n) + 40 * np.sin(2 * np.pi * 0.3 * t)
    return eeg


def write_demo_bids(*, adapter: DemoDataset, sentences_tsv: Path, planted_layer_file: Path, demo: dict, seed: int,
                    out_root: Path) -> None:
    """Step function: simulate every subject and run and write them as BIDS (BrainVision) with mne-bids."""
    mne.set_log_level("WARNING")
    sentences = pd.read_csv(sentences_tsv, sep="\t")
    truth = adapter.truth()
    negative = set(truth.loc[truth["prosody"] == "negative", "sentence_id"].astype(int))
    n_rich = max(demo["n_sources"], demo["negative_rich_sources"])
    sources = planted_sources(planted_layer_file, sentences["sentence_id"].tolist(), n_rich)
    montage = mne.channels.make_standard_montage(adapter.montage)
    ch_names = list(montage.ch_names)
    if demo["bad_channel"] not in ch_names:
        raise ValueError(f"config.yaml: datasets.demo.demo.bad_channel {demo['bad_channel']!r} is not in {adapter.montage}")
    bad_index = ch_names.index(demo["bad_channel"])
    group_rng = make_rng(seed, "demo", "topographies")
    A0 = scalp_patterns(montage, ch_names, demo["n_sources"], group_rng)
    A_rich0 = scalp_patterns(montage, ch_names, demo["negative_rich_sources"], group_rng)
    pos = np.array([montage.get_positions()["ch_pos"][c] for c in ch_names])
    fz_cz = pos[[ch_names.index("Fz"), ch_names.index("Cz")]].mean(axis=0)
    v0 = np.exp(-((pos - fz_cz) ** 2).sum(1) / (2 * 0.06**2))
    v0 = (v0 - v0.mean()) / np.linalg.norm(v0 - v0.mean())
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    conduction = np.exp(-d2 / (2 * 0.04**2))
    out_root.mkdir(parents=True, exist_ok=True)
    for i, subject in enumerate(adapter.subjects()):
        rng = make_rng(seed, "demo", "subject", subject)
        A = A0 + 0.1 * rng.standard_normal(A0.shape) / np.sqrt(len(ch_names))
        A_rich = A_rich0 + 0.1 * rng.standard_normal(A_rich0.shape) / np.sqrt(len(ch_names))
        v = v0 + 0.1 * rng.standard_normal(v0.shape) / np.sqrt(len(ch_names))
        for rec in adapter.recordings(subject):
            stim_file = f"run-{rec.run}.wav"
            duration = len(load_audio(adapter.stimulus_path(stim_file))) / 16_000 + demo["tail_s"]
            eeg_uv = simulate_run(sentences=sentences[sentences["stim_file"] == stim_file], sources=sources,
                                  negative=negative, duration_s=duration, sfreq=demo["sfreq"], A=A, A_rich=A_rich, v=v,
                                  params=demo,
                                  rng=rng, line_freq=adapter.line_freq, bad_index=bad_index,
                                  conduction=conduction)
            info = mne.create_info(ch_names, demo["sfreq"], "eeg")
            raw = mne.io.RawArray(eeg_uv * 1e-6, info, verbose=False)
            raw.set_montage(montage)
            raw.info["line_freq"] = adapter.line_freq
            if i % 2 == 1:
                raw.info["bads"] = [demo["bad_channel"]]
            bids_path = BIDSPath(subject=subject, task=adapter.task, run=rec.run, datatype="eeg", root=out_root)
            write_raw_bids(raw, bids_path, format="BrainVision", allow_preload=True, overwrite=True, verbose=False)
    make_dataset_description(path=out_root, name="hearlike demo (synthetic, planted effects)", authors=["hearlike"],
                             generated_by=[{"Name": "hearlike", "Description": "hearlike.demo.eeg.write_demo_bids"}],
                             overwrite=True, verbose=False)
    log.info("wrote %d subjects x %d runs to %s", len(adapter.subjects()), len(adapter.recordings("x")), out_root)
