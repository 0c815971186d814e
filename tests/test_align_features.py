"""Alignment of EEG to model frames and model-side PCA features."""

import numpy as np
import pytest

from hearlike.align import frame_means, group_layers, zscore_columns
from hearlike.features import pca_zscore


def test_frame_means_equal_block_averages():
    sfreq = 500.0
    rng = np.random.default_rng(0)
    eeg = rng.standard_normal((3, 1000))
    frames = np.column_stack([np.arange(0, 2.0, 0.04), np.arange(0.04, 2.04, 0.04)])  # 25 Hz frames
    out = frame_means(eeg, sfreq, frames)
    assert out.shape == (50, 3)
    np.testing.assert_allclose(out[7], eeg[:, 140:160].mean(axis=1))
    np.testing.assert_allclose(out[-1], eeg[:, 980:1000].mean(axis=1))


def test_frame_means_lag_uses_post_and_nan_past_end():
    sfreq = 100.0
    eeg = np.tile(np.arange(100.0), (2, 1))
    post = np.tile(np.arange(100.0, 150.0), (2, 1))
    frames = np.array([[0.0, 0.1], [0.9, 1.0]])
    lagged = frame_means(eeg, sfreq, frames, lag_s=0.3, post=post)
    np.testing.assert_allclose(lagged[:, 0], [34.5, 124.5])
    beyond = frame_means(eeg, sfreq, frames, lag_s=0.6)
    assert np.isnan(beyond[1]).all() and np.isfinite(beyond[0]).all()


def test_frame_means_constant_signal_is_preserved_for_any_rate():
    eeg = np.full((4, 512), 3.25)
    for rate in (50, 25, 12.5, 10, 6.25):
        n = int(rate)
        frames = np.column_stack([np.arange(n) / rate, (np.arange(n) + 1) / rate])
        np.testing.assert_allclose(frame_means(eeg, 512.0, frames), 3.25)


def test_zscore_columns_constant_is_nan():
    x = np.column_stack([np.arange(5.0), np.ones(5)])
    z = zscore_columns(x)
    np.testing.assert_allclose(z[:, 0].std(ddof=1), 1.0)
    assert np.isnan(z[:, 1]).all()


def test_group_layers_by_timebase():
    assert group_layers(["encoder.00", "encoder.01", "llm.00"]) == {"encoder": ["encoder.00", "encoder.01"],
                                                                    "llm": ["llm.00"]}


def test_pca_zscore_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 30)) @ rng.standard_normal((30, 30))
    ours = pca_zscore(x, 5)
    ref = PCA(5).fit_transform(x)
    ref /= ref.std(axis=0, ddof=1)
    for k in range(5):
        assert abs(abs(np.corrcoef(ours[:, k], ref[:, k])[0, 1]) - 1) < 1e-9
    np.testing.assert_allclose(ours.std(axis=0, ddof=1), 1.0)


def test_pca_zscore_has_a_fixed_width_and_refuses_short_sentences():
    """Every sentence gets the same k (no 11-wide sentence beside 20-wide ones); too few frames is an error
    (the feature stage excludes such sentences first), and a zero-variance component is NaN, not 0."""
    rng = np.random.default_rng(2)
    assert pca_zscore(rng.standard_normal((21, 50)), 20).shape == (21, 20)
    assert pca_zscore(rng.standard_normal((300, 50)), 20).shape == (300, 20)
    with pytest.raises(ValueError, match="at least 21 frames, got 12"):
        pca_zscore(rng.standard_normal((12, 50)), 20)
    low_rank = np.outer(rng.standard_normal(30), rng.standard_normal(50))
    assert np.isnan(pca_zscore(low_rank, 5)[:, 1:]).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_pca_zscore_deterministic_sign(seed):
    x = np.random.default_rng(seed).standard_normal((40, 10))
    np.testing.assert_array_equal(pca_zscore(x, 4), pca_zscore(x.copy(), 4))
