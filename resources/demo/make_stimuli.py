"""Make the bundled demo stimuli once (not part of the workflow; the outputs are committed).

Usage (needs Debian's espeak-ng and sox; ``apt-get install espeak-ng sox``)::

    python resources/demo/make_stimuli.py --out resources/demo/stimuli

Writes two 16 kHz mono "runs" (``run-01.wav``, ``run-02.wav``) of 12 English sentences each, a word
timing table (``words.tsv``) and the ground truth (``sentences_truth.tsv``). Every word is synthesised
on its own with the sentence's prosody and concatenated with a short pause, so the word onsets and
offsets are exact by construction (no forced aligner needed). A third of the sentences are spoken with
"negative" prosody: lower pitch, slower, softer, with a narrower pitch range (espeak-ng ``-p -s -a`` and
SSML ``<prosody range>``), the contrast the study's affective analysis looks for.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SR = 16_000
SENTENCES = [
    "The old man walked slowly down to the harbour before the sun came up.",
    "A small boat was waiting near the stone wall.",
    "The children laughed and ran across the bright field behind the school.",
    "She opened the window to let the morning in.",
    "Nobody came to the funeral.",
    "The river carried leaves past the quiet mill and under the old bridge.",
    "He counted the coins twice before he paid the smiling baker.",
    "The letter said that his brother had died.",
    "Birds were singing in the tall green trees along the road.",
    "The market was full of fruit and loud happy voices that morning.",
    "Her dog was lost and never found.",
    "We cooked a simple dinner over the fire.",
    "The train left the station just after noon with every seat taken.",
    "The house stood empty after the winter.",
    "A cold wind blew through the broken door.",
    "They painted the fence a cheerful shade of blue last summer.",
    "The teacher read a story about a clever fox and a greedy crow.",
    "Everything he loved was gone.",
    "My grandmother planted roses by the gate every single spring.",
    "The lamp flickered as the storm grew worse.",
    "He sat alone and watched the ashes cool.",
    "A musician played the violin in the square for the crowd.",
    "The baker sold warm bread to the early crowd at the market.",
    "Nobody answered when she called.",
]
N_NEGATIVE = 8
SENTENCES_PER_RUN = 12
WORD_GAP_S = {"neutral": 0.04, "negative": 0.08}
SENTENCE_GAP_S = 0.9
LEAD_IN_S = 1.0


def synth_word(word: str, *, pitch: int, speed: int, amplitude: int, pitch_range: str) -> np.ndarray:
    """One word from espeak-ng at 16 kHz, leading and trailing silence trimmed."""
    ssml = f'<speak><prosody range="{pitch_range}">{word}</prosody></speak>'
    tts = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-m", "-p", str(pitch), "-s", str(speed), "-a", str(amplitude), "--stdout", ssml],
        check=True, capture_output=True,
    ).stdout
    wav = subprocess.run(
        ["sox", "-t", "wav", "-", "-r", str(SR), "-c", "1", "-b", "16", "-t", "wav", "-"],
        input=tts, check=True, capture_output=True,
    ).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    assert sr == SR
    env = np.convolve(np.abs(x), np.ones(160) / 160, mode="same")
    voiced = np.flatnonzero(env > 0.02 * env.max())
    return x[voiced[0] : voiced[-1] + 1]


def main(out: Path, seed: int = 7) -> None:
    """Synthesise the demo runs and tables into ``out``."""
    rng = np.random.default_rng(seed)
    # Negative prosody is slower, so the negative set is drawn among the shorter texts: sentence
    # durations then overlap between groups and duration can be controlled for statistically.
    n_words = np.array([len(s.split()) for s in SENTENCES])
    shorter = np.flatnonzero(n_words <= np.sort(n_words)[12])
    negative = set(rng.choice(shorter, size=N_NEGATIVE, replace=False).tolist())
    out.mkdir(parents=True, exist_ok=True)
    words, truth = [], []
    for run in range(len(SENTENCES) // SENTENCES_PER_RUN):
        signal = [np.zeros(int(LEAD_IN_S * SR), np.float32)]
        t = LEAD_IN_S
        stim_file = f"run-{run + 1:02d}.wav"
        for j in range(SENTENCES_PER_RUN):
            idx = run * SENTENCES_PER_RUN + j
            group = "negative" if idx in negative else "neutral"
            jitter = int(rng.integers(-4, 5))
            if group == "negative":
                voice = dict(pitch=22 + jitter, speed=130, amplitude=55, pitch_range="x-low")
            else:
                voice = dict(pitch=52 + jitter, speed=172, amplitude=100, pitch_range="medium")
            tokens = SENTENCES[idx].rstrip(".").split()
            for w_i, token in enumerate(tokens):
                x = synth_word(token, **voice)
                words.append(dict(stim_file=stim_file, word_index=len(words) + 1, word=token,
                                  onset_s=round(t, 6), offset_s=round(t + len(x) / SR, 6), sentence_id=idx + 1))
                signal.append(x)
                t += len(x) / SR
                if w_i < len(tokens) - 1:
                    gap = np.zeros(int(WORD_GAP_S[group] * SR), np.float32)
                    signal.append(gap)
                    t += len(gap) / SR
            truth.append(dict(sentence_id=idx + 1, stim_file=stim_file, text=SENTENCES[idx], prosody=group,
                              espeak_pitch=voice["pitch"], espeak_speed=voice["speed"],
                              espeak_amplitude=voice["amplitude"], ssml_range=voice["pitch_range"]))
            gap = np.zeros(int(SENTENCE_GAP_S * SR), np.float32)
            signal.append(gap)
            t += len(gap) / SR
        sf.write(out / stim_file, np.concatenate(signal), SR, subtype="PCM_16")
    pd.DataFrame(words).to_csv(out / "words.tsv", sep="\t", index=False)
    pd.DataFrame(truth).to_csv(out / "sentences_truth.tsv", sep="\t", index=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "stimuli")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    main(args.out, args.seed)
