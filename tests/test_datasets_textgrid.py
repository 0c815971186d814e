"""Word tiers of TextGrids, text alignment and the pause-based sentence fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hearlike.datasets.base import DatasetError
from hearlike.datasets.textgrid import (
    align_words_to_text,
    normalise_token,
    pause_pieces,
    read_textgrid_words,
    tokenise_text,
)

DATA = Path(__file__).parent / "data" / "ds004408"


def test_word_tier_of_hand_made_textgrid_drops_silences():
    tier = read_textgrid_words(DATA / "stimuli" / "audio01.TextGrid")
    words = tier.words
    assert list(words.columns) == ["word_index", "word", "onset_s", "offset_s"]
    assert len(words) == 28
    assert words["word_index"].tolist() == list(range(1, 29))
    assert not set(words["word"]) & {"sil", "sp", ""}
    assert words["word"].iloc[:4].tolist() == ["the", "old", "boat", "drifted"]
    assert words["onset_s"].iloc[0] == pytest.approx(0.5)
    assert (words["offset_s"] > words["onset_s"]).all()
    assert np.all(np.diff(words["onset_s"]) > 0)
    assert tier.xmax == pytest.approx(12.0)


def test_textgrid_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match=r"audio07\.TextGrid: TextGrid not found"):
        read_textgrid_words(tmp_path / "audio07.TextGrid")
    bad = tmp_path / "broken.TextGrid"
    bad.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\nxmin = 0\n')
    with pytest.raises(DatasetError, match=r"broken\.TextGrid"):
        read_textgrid_words(bad)
    only_phones = tmp_path / "phones.TextGrid"
    text = (DATA / "stimuli" / "audio03.TextGrid").read_text().replace('name = "words"', 'name = "wrds"')
    only_phones.write_text(text)
    with pytest.raises(DatasetError, match=r"phones\.TextGrid: no tier named 'words'.*'wrds'"):
        read_textgrid_words(only_phones)


def test_normalise_and_tokenise():
    assert normalise_token("Don't") == "dont"
    assert normalise_token("“Sea-bird,”") == "seabird"
    toks = tokenise_text('He said, "Stop." Mr. Smith — the sea-bird — flew... Away! No')
    norms = [t.norm for t in toks]
    assert norms == ["he", "said", "stop", "mr", "smith", "the", "sea", "bird", "flew", "away", "no"]
    ends = {t.norm: t.ends_sentence for t in toks}
    assert ends["stop"] and ends["flew"] and ends["away"]
    assert not ends["mr"] and not ends["said"] and not ends["no"]


def test_alignment_carries_sentence_ends_through_mismatches():
    # aligner output: lower case, no punctuation, one inserted filler, a compound split, a word missing
    words = "the man left then um the sea bird flew away night fell".split()
    text = "Chapter 1. The man left (quietly.) Then the seabird! Flew away; night fell."
    aln = align_words_to_text(words, text)
    # ends: after "left" (from the unspoken "(quietly.)"), after "bird" ("seabird!" spread over
    # sea + bird), after "fell"; the unspoken heading "Chapter 1." closes nothing
    assert np.flatnonzero(aln.ends).tolist() == [2, 7, 11]
    assert aln.match_fraction == pytest.approx(9 / 12)
    assert aln.book_text[0] == "The"


def test_pause_pieces_split_and_merge():
    # words of 0.25 s; silences after words 2 (0.4 s) and 3 (0.45 s); word 3 alone is a 0.25 s piece
    onsets = np.array([0.0, 0.35, 1.0, 1.7, 2.0])
    offsets = onsets + 0.25
    labels = pause_pieces(onsets, offsets, min_pause_s=0.3, min_piece_s=0.5)
    # the lone word merges across the shorter silence (0.4 s before it, not 0.45 s after)
    assert labels.tolist() == [1, 1, 1, 2, 2]
    # no silence reaches the threshold: one piece
    assert pause_pieces(onsets, offsets, min_pause_s=0.6).tolist() == [1] * 5
    # one short piece left: kept as is
    assert pause_pieces(onsets[:1], offsets[:1]).tolist() == [1]
    assert pause_pieces(np.array([]), np.array([])).size == 0
