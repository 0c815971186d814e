"""Word-timing helpers shared by the dataset adapters.

* reading the word tier of a Praat TextGrid (ds004408's Prosodylab-Aligner output: tiers ``phones`` and
  ``words``, silences labelled ``sil``/``sp`` or left empty);
* sentence boundaries from punctuated text: the aligner's words (lower case, no punctuation) are aligned
  to the punctuated text with a sequence alignment on normalised tokens, and cut after sentence-final
  punctuation;
* the pause-based fallback (split at silences >= 300 ms, merge pieces < 0.5 s).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hearlike.datasets.base import DatasetError

#: labels Prosodylab-Aligner writes for non-speech intervals (compared after strip + lower-case)
SILENCE_LABELS = frozenset({"", "sil", "sp", "<sil>", "<sp>"})

#: sentence-final punctuation, possibly followed by closing quotes or brackets
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*$")
#: abbreviations whose full stop does not end a sentence (normalised form)
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr"})
#: hyphens and dashes split book tokens, because the aligner's dictionary may split compounds
_DASHES = re.compile(r"[-‐‑‒–—―]+")


@dataclass(frozen=True)
class WordTier:
    """The spoken words of one TextGrid: ``words`` has ``word_index word onset_s offset_s``."""

    path: Path
    words: pd.DataFrame
    xmin: float
    xmax: float


def read_textgrid_words(path: str | Path, *, tier: str = "words") -> WordTier:
    """Read the word tier of a TextGrid, dropping silences; ``word_index`` counts from 1."""
    from praatio import textgrid as tgio

    path = Path(path)
    if not path.exists():
        raise DatasetError(
            f"{path}: TextGrid not found. Download the stimuli "
            "(python -m hearlike.datasets.download ds004408 --dest DIR --stimuli-only)."
        )
    try:
        tg = tgio.openTextgrid(str(path), includeEmptyIntervals=False, reportingMode="silence")
    except Exception as exc:  # praatio raises several types for malformed files
        raise DatasetError(f"{path}: not a readable Praat TextGrid ({exc}); re-download the file.") from exc
    if tier not in tg.tierNames:
        raise DatasetError(
            f"{path}: no tier named {tier!r} (tiers: {list(tg.tierNames)}); "
            "expected Prosodylab-Aligner output with tiers 'phones' and 'words'."
        )
    entries = tg.getTier(tier).entries
    rows = [
        (float(e.start), float(e.end), str(e.label).strip())
        for e in entries
        if str(e.label).strip().lower() not in SILENCE_LABELS
    ]
    if not rows:
        raise DatasetError(f"{path}: tier {tier!r} holds no words (only silences).")
    words = pd.DataFrame(rows, columns=["onset_s", "offset_s", "word"])
    if (words["offset_s"] <= words["onset_s"]).any():
        bad = words.index[words["offset_s"] <= words["onset_s"]][0]
        raise DatasetError(f"{path}: word interval {bad + 1} has offset <= onset; the file is corrupt.")
    if (np.diff(words["onset_s"].to_numpy()) < 0).any():
        raise DatasetError(f"{path}: word intervals are not in time order; the file is corrupt.")
    words.insert(0, "word_index", np.arange(1, len(words) + 1))
    words = words[["word_index", "word", "onset_s", "offset_s"]]
    return WordTier(path=path, words=words, xmin=float(tg.minTimestamp), xmax=float(tg.maxTimestamp))


def normalise_token(token: str) -> str:
    """Lower-case letters and digits only (``Don't`` → ``dont``, ``sea-bird`` → ``seabird``)."""
    token = unicodedata.normalize("NFKC", token).lower()
    return "".join(ch for ch in token if ch.isalnum())


@dataclass(frozen=True)
class BookToken:
    """One token of the punctuated text."""

    raw: str
    norm: str
    ends_sentence: bool


def tokenise_text(text: str) -> list[BookToken]:
    """Split punctuated text into tokens that carry a sentence-end flag.

    Tokens are split at white space and dashes; a token made only of punctuation (``—``, ``...``)
    hands its sentence end to the previous token.
    """
    tokens: list[BookToken] = []
    for chunk in text.split():
        pieces = [p for p in _DASHES.split(chunk) if p]
        for piece in pieces:
            norm = normalise_token(piece)
            ends = bool(_SENTENCE_END.search(piece)) and norm not in _ABBREVIATIONS
            if not norm:
                if ends and tokens:
                    prev = tokens[-1]
                    tokens[-1] = BookToken(prev.raw + piece, prev.norm, True)
                continue
            tokens.append(BookToken(piece, norm, ends))
    return tokens


@dataclass(frozen=True)
class TextAlignment:
    """Result of aligning aligner words to punctuated text."""

    ends: np.ndarray  # bool per aligner word: a sentence ends after it
    book_text: list[str]  # per aligner word: the raw book tokens mapped onto it ('' if none)
    match_fraction: float  # share of aligner words in exactly matching blocks


def align_words_to_text(words: list[str], text: str) -> TextAlignment:
    """Align aligner words to punctuated text (difflib on normalised tokens) and carry sentence ends over."""
    book = tokenise_text(text)
    a = [t.norm for t in book]
    b = [normalise_token(w) for w in words]
    n = len(b)
    ends = np.zeros(n, dtype=bool)
    book_text = [""] * n
    matched = 0
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            matched += j2 - j1
            for k in range(i2 - i1):
                ends[j1 + k] |= book[i1 + k].ends_sentence
                book_text[j1 + k] = book[i1 + k].raw
        elif op == "replace":
            # spread the book tokens proportionally over the aligner words of the block
            for k in range(i2 - i1):
                j = j1 + int(np.ceil((k + 1) * (j2 - j1) / (i2 - i1))) - 1
                ends[j] |= book[i1 + k].ends_sentence
                book_text[j] = f"{book_text[j]} {book[i1 + k].raw}".strip()
        elif op == "delete":
            # unspoken text: a sentence end in it still closes the sentence of the preceding word
            if j1 > 0 and any(t.ends_sentence for t in book[i1:i2]):
                ends[j1 - 1] = True
    return TextAlignment(ends=ends, book_text=book_text, match_fraction=matched / n if n else float("nan"))


def pause_pieces(
    onsets: np.ndarray, offsets: np.ndarray, *, min_pause_s: float = 0.3, min_piece_s: float = 0.5
) -> np.ndarray:
    """Piece number (from 1) per word: split at silences >= ``min_pause_s``, merge pieces < ``min_piece_s``.

    A short piece joins the neighbour across the shorter silence (the earlier one on ties), repeated
    until every piece lasts at least ``min_piece_s`` or only one piece is left.
    """
    onsets = np.asarray(onsets, dtype=float)
    offsets = np.asarray(offsets, dtype=float)
    n = len(onsets)
    if n == 0:
        return np.zeros(0, dtype=int)
    gaps = onsets[1:] - offsets[:-1]
    starts = [0, *(np.flatnonzero(gaps >= min_pause_s) + 1).tolist()]
    pieces = [[s, e] for s, e in zip(starts, [*starts[1:], n], strict=True)]  # [start, stop)

    def duration(p: list[int]) -> float:
        return float(offsets[p[1] - 1] - onsets[p[0]])

    while len(pieces) > 1:
        short = next((i for i, p in enumerate(pieces) if duration(p) < min_piece_s), None)
        if short is None:
            break
        p = pieces[short]
        gap_before = onsets[p[0]] - offsets[p[0] - 1] if short > 0 else np.inf
        gap_after = onsets[p[1]] - offsets[p[1] - 1] if short < len(pieces) - 1 else np.inf
        if gap_before <= gap_after:
            pieces[short - 1][1] = p[1]
        else:
            pieces[short + 1][0] = p[0]
        del pieces[short]
    labels = np.empty(n, dtype=int)
    for k, (s, e) in enumerate(pieces, start=1):
        labels[s:e] = k
    return labels
