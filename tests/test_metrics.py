"""Metric registry, kernel/dependence metrics against textbook formulas and the dcor package, Gaussian-copula
MI, degenerate inputs, batching and devices."""

from __future__ import annotations

import math

import dcor as dcor_pkg
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as ss
import torch
from scipy.spatial.distance import pdist, squareform

import hearlike.metrics as hm
from hearlike.metrics import METRICS, compute, compute_battery

TOL = 1e-6
ALL = list(METRICS)


# ---------------------------------------------------------------- textbook references (explicit H·K·H)
def centring_matrix(n: int) -> np.ndarray:
    return np.eye(n) - np.ones((n, n)) / n


def hkh(k: np.ndarray) -> np.ndarray:
    h = centring_matrix(k.shape[0])
    return h @ k @ h


def cos_frob(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def rbf_ref(x: np.ndarray, mult: float = 1.0) -> np.ndarray:
    d2 = squareform(pdist(x, "sqeuclidean"))
    upper = d2[np.triu_indices(len(x), 1)]
    sigma2 = np.median(upper[upper > 0]) * mult**2
    return np.exp(-d2 / (2 * sigma2))


def linear_ref(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def hsic_unbiased_song(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. (2012), eq. 5."""
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    term = np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term -= 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float(term / (n * (n - 3)))


def rv_ref(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(0), y - y.mean(0)
    num = np.trace(xc.T @ yc @ yc.T @ xc)
    return float(num / np.sqrt(np.trace((xc.T @ xc) @ (xc.T @ xc)) * np.trace((yc.T @ yc) @ (yc.T @ yc))))


def rv2_ref(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(0), y - y.mean(0)
    a, b = xc @ xc.T, yc @ yc.T
    a, b = a - np.diag(np.diag(a)), b - np.diag(np.diag(b))
    return float(np.trace(a @ b) / np.sqrt(np.trace(a @ a) * np.trace(b @ b)))


def gcmi_ref(x: np.ndarray, y: np.ndarray, bias_correct: bool) -> float:
    """Copula-normalise varying columns, Gaussian MI from covariance log-determinants (Ince et al. 2017)."""
    n = x.shape[0]

    def copnorm(m: np.ndarray) -> np.ndarray:
        keep = m.max(0) > m.min(0)
        return sp.ndtri(ss.rankdata(m[:, keep], axis=0) / (n + 1))

    gx, gy = copnorm(x), copnorm(y)
    nx, ny = gx.shape[1], gy.shape[1]
    c = np.atleast_2d(np.cov(np.hstack([gx, gy]), rowvar=False))
    h = [0.5 * np.linalg.slogdet(m)[1] for m in (c[:nx, :nx], c[nx:, nx:], c)]
    mi = h[0] + h[1] - h[2]
    if bias_correct:
        psi = sp.psi((n - np.arange(1, nx + ny + 1)) / 2) / 2
        mi += -psi[:nx].sum() - psi[:ny].sum() + psi.sum()
    return mi / math.log(2)


def reference(name: str, x: np.ndarray, y: np.ndarray, **kw: object) -> float:
    """Textbook value of a kernel/dependence metric for one sentence."""
    if name in ("cka_linear", "rv"):
        return cos_frob(hkh(linear_ref(x)), hkh(linear_ref(y)))
    if name in ("cka_rbf", "hsic_rbf_norm"):
        m = float(kw.get("bandwidth", 1.0))
        return cos_frob(hkh(rbf_ref(x, m)), hkh(rbf_ref(y, m)))
    if name == "hsic_rbf":
        n = x.shape[0]
        return float((hkh(rbf_ref(x)) * hkh(rbf_ref(y))).sum() / (n - 1) ** 2)
    if name == "cka_debiased":
        kern = rbf_ref if kw.get("kernel") == "rbf" else (lambda m: linear_ref(m - m.mean(0)))
        k, l = kern(x), kern(y)  # noqa: E741
        return hsic_unbiased_song(k, l) / math.sqrt(hsic_unbiased_song(k, k) * hsic_unbiased_song(l, l))
    if name == "dcor":
        return float(dcor_pkg.distance_correlation(x, y, exponent=float(kw.get("exponent", 1.0))))
    if name == "dcor2":
        return float(dcor_pkg.distance_correlation_sqr(x, y, exponent=float(kw.get("exponent", 1.0))))
    if name == "rv2":
        return rv2_ref(x, y)
    if name == "gcmi":
        return gcmi_ref(x, y, bool(kw.get("bias_correct", True)))
    raise KeyError(name)


KERNEL_NAMES = [
    "cka_linear",
    "cka_rbf",
    "cka_debiased",
    "dcor",
    "dcor2",
    "hsic_rbf",
    "hsic_rbf_norm",
    "rv",
    "rv2",
]


def _data(
    rng: np.random.Generator, n: int, p: int, *, ties: bool = False, constant_col: bool = False
) -> np.ndarray:
    x = rng.standard_normal((n, p))
    if ties:
        x = np.round(x, 0)
    if constant_col and p > 1:
        x[:, 0] = 2.5
    return x


# ---------------------------------------------------------------- registry
def test_registry_contents() -> None:
    expected = {"rsa_spearman", "rsa_pearson", "rsa_kendall", "cka_linear", "cka_rbf", "cka_debiased", "dcor",
                "dcor2", "hsic_rbf", "hsic_rbf_norm", "rv", "rv2", "gcmi"}  # fmt: skip
    assert set(METRICS) == expected
    for name, spec in METRICS.items():
        assert spec.name == name
        assert spec.family in hm.FAMILIES
        lo, hi = spec.value_range
        assert lo < hi
        assert spec.fisher_z == name.startswith("rsa_")
        path = hm.module_path(name)
        assert path.is_file() and path.suffix == ".py"
        assert path.stem == spec.module.rsplit(".", 1)[1]
        assert path == hm.module_paths(name)[0] and all(p.is_file() for p in hm.module_paths(name))
        with pytest.raises(dataclass_error()):
            spec.name = "x"  # type: ignore[misc]
    stems = {n: hm.module_path(n).stem for n in METRICS}
    assert stems["rsa_kendall"] == "rsa" and stems["dcor2"] == "dcor" and stems["rv2"] == "rv"
    assert len(set(stems.values())) == 6  # one module per family: rsa, cka, dcor, hsic, rv, gcmi
    assert {METRICS[n].family for n in ("rsa_spearman", "cka_rbf")} == {"geometric"}
    assert {METRICS[n].family for n in ("dcor", "hsic_rbf", "rv", "gcmi")} == {"dependence"}


def dataclass_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_settings_are_validated() -> None:
    x = np.random.default_rng(0).standard_normal((10, 2))
    with pytest.raises(ValueError, match="unknown metric"):
        compute("cka", x, x)
    with pytest.raises(ValueError, match="no setting"):
        compute("cka_rbf", x, x, sigma=1.0)
    with pytest.raises(ValueError, match="no setting"):
        compute("rv", x, x, bandwidth="median")
    with pytest.raises(ValueError, match="exponent"):
        compute("dcor", x, x, exponent=2.0)
    with pytest.raises(ValueError, match="bool"):
        compute("gcmi", x, x, bias_correct="false")
    with pytest.raises(ValueError, match="kernel"):
        compute("cka_debiased", x, x, kernel="poly")
    with pytest.raises(ValueError, match="not requested"):
        compute_battery(x[None], x[None], metrics=["rv"], settings={"cka_rbf": {}})
    with pytest.raises(ValueError, match="same number of frames"):
        compute_battery(x[None], x[None, :9], metrics=["rv"])


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize(
    ("n", "p", "q", "ties", "constant_col"),
    [(4, 1, 3, False, False), (5, 3, 2, True, False), (12, 2, 20, False, True), (60, 1, 20, True, False),
     (200, 23, 20, False, True), (500, 3, 20, True, True)],
)  # fmt: skip
def test_kernel_metrics_match_textbook(n: int, p: int, q: int, ties: bool, constant_col: bool) -> None:
    rng = np.random.default_rng(n + p)
    n_x = 2 if n < 200 else 1  # the O(T³) textbook references dominate the run time
    X = np.stack([_data(rng, n, p, ties=ties, constant_col=constant_col) for _ in range(n_x)])
    Y = np.stack([_data(rng, n, q, ties=ties) for _ in range(2)])
    Y[1] = Y[1] + 0.5 * X[0, :, :1]  # some dependence
    ours = compute_battery(X, Y, metrics=KERNEL_NAMES)
    for name in KERNEL_NAMES:
        ref = np.array([[reference(name, x, y) for y in Y] for x in X])
        np.testing.assert_allclose(ours[name], ref, rtol=1e-9, atol=TOL, err_msg=name)


@pytest.mark.parametrize(
    ("name", "settings"),
    [("cka_rbf", {"bandwidth": 0.5}), ("hsic_rbf_norm", {"bandwidth": 3.0}), ("cka_debiased", {"kernel": "rbf"}),
     ("dcor", {"exponent": 0.5}), ("dcor2", {"exponent": 1.5}), ("gcmi", {"bias_correct": False})],
)  # fmt: skip
def test_metric_settings_match_textbook(name: str, settings: dict) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3))
    y = x[:, :2] ** 3 + rng.standard_normal((40, 2))
    assert compute(name, x, y, **settings) == pytest.approx(reference(name, x, y, **settings), abs=TOL)


def test_identities_rv_cka_and_normalised_hsic() -> None:
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((3, 50, 4)), rng.standard_normal((2, 50, 20))
    r = compute_battery(X, Y, metrics=["rv", "cka_linear", "hsic_rbf_norm", "cka_rbf", "dcor", "dcor2"])
    np.testing.assert_array_equal(r["rv"], r["cka_linear"])
    np.testing.assert_array_equal(r["hsic_rbf_norm"], r["cka_rbf"])
    np.testing.assert_allclose(r["dcor"] ** 2, r["dcor2"], rtol=1e-12)
    x, y = X[0], Y[0]
    assert r["rv"][0, 0] == pytest.approx(rv_ref(x, y), abs=1e-12)  # the tr(XᵀYYᵀX) form


@pytest.mark.parametrize(("n", "p", "q"), [(8, 1, 2), (30, 3, 5), (300, 23, 20)])
def test_gcmi_matches_textbook(n: int, p: int, q: int) -> None:
    rng = np.random.default_rng(n)
    X = np.stack([_data(rng, n, p, ties=True, constant_col=True), _data(rng, n, p)])
    Y = np.stack([_data(rng, n, q), np.tanh(X[1, :, :1]) + rng.standard_normal((n, q))])
    for bias in (True, False):
        ours = compute_battery(X, Y, metrics=["gcmi"], settings={"gcmi": {"bias_correct": bias}})["gcmi"]
        ref = np.array([[gcmi_ref(x, y, bias) for y in Y] for x in X])
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=TOL)


def test_gcmi_bias_correction_centres_independent_data() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 30, 3))
    Y = rng.standard_normal((1, 30, 3))
    corrected = compute_battery(X, Y, metrics=["gcmi"])["gcmi"][:, 0]
    raw = compute_battery(X, Y, metrics=["gcmi"], settings={"gcmi": {"bias_correct": False}})["gcmi"][:, 0]
    se = raw.std() / math.sqrt(raw.size)
    assert raw.mean() > 10 * se  # plug-in MI is biased upwards
    assert abs(corrected.mean()) < abs(raw.mean()) / 3


def test_gcmi_recovers_gaussian_mi_and_is_rank_invariant() -> None:
    rng = np.random.default_rng(4)
    rho = 0.8
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=2000)
    expected = -0.5 * math.log2(1 - rho**2)
    assert compute("gcmi", z[:, :1], z[:, 1:]) == pytest.approx(expected, abs=0.05)
    # copula MI depends on ranks only: strictly monotone maps of any column change nothing
    x = rng.standard_normal((50, 3))
    y = x[:, :2] + rng.standard_normal((50, 2))
    warped = np.column_stack([np.exp(x[:, 0]), x[:, 1] ** 3, -1.0 / (3 + x[:, 2])])
    assert compute("gcmi", warped, y) == pytest.approx(compute("gcmi", x, y), abs=1e-12)


# ---------------------------------------------------------------- invariances and ranges
def test_all_metrics_symmetric_and_in_range() -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 40, 4))
    Y = rng.standard_normal((2, 40, 6)) + X[:2, :, :1]
    ab = compute_battery(X, Y, metrics=ALL)
    ba = compute_battery(Y, X, metrics=ALL)
    for name in ALL:
        np.testing.assert_allclose(ab[name], ba[name].T, rtol=1e-10, atol=1e-12, err_msg=name)
        lo, hi = METRICS[name].value_range
        if name != "gcmi":  # the bias-corrected MI estimate may dip below the population range
            assert np.all((ab[name] >= lo) & (ab[name] <= hi)), name


def test_invariances() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 6))
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    moved = 3.0 * x @ q + 7.0  # rotation, isotropic scaling, translation
    for name in ("cka_linear", "cka_rbf", "cka_debiased", "dcor", "dcor2", "hsic_rbf", "rv", "rv2"):
        assert compute(name, moved, y) == pytest.approx(compute(name, x, y), abs=1e-10), name
    scaled = x * 4.0 - 1.0
    for name in ("rsa_spearman", "rsa_pearson", "rsa_kendall", "gcmi"):
        assert compute(name, scaled, y) == pytest.approx(compute(name, x, y), abs=1e-12), name
    assert compute("cka_linear", y, y) == pytest.approx(1.0, abs=1e-12)
    assert compute("dcor", y, y) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------- degenerate input → NaN, never 0.0
@pytest.mark.parametrize("n_frames", [0, 1, 2])
def test_too_few_frames_give_nan(n_frames: int) -> None:
    rng = np.random.default_rng(n_frames)
    res = compute_battery(
        rng.standard_normal((2, n_frames, 3)), rng.standard_normal((3, n_frames, 2)), metrics=ALL
    )
    for name in ALL:
        assert res[name].shape == (2, 3) and np.isnan(res[name]).all(), name


def test_debiased_cka_needs_four_frames() -> None:
    x = np.random.default_rng(7).standard_normal((3, 2))
    assert np.isnan(compute("cka_debiased", x, x))
    assert np.isfinite(compute("cka_debiased", np.vstack([x, [[0.3, 1.0]]]), np.vstack([x, [[0.2, 0.1]]])))


def test_constant_or_nonfinite_items_give_nan_and_leave_others_alone() -> None:
    rng = np.random.default_rng(8)
    X = rng.standard_normal((4, 30, 3))
    Y = rng.standard_normal((2, 30, 5))
    X[1] = 1.25  # no variance at all
    X[2, 5, 1] = np.nan
    Y_bad = Y.copy()
    Y_bad[1] = -4.0
    full = compute_battery(X, Y_bad, metrics=ALL)
    clean = compute_battery(X[[0, 3]], Y[:1], metrics=ALL)
    for name in ALL:
        assert np.isnan(full[name][[1, 2]]).all(), name
        assert np.isnan(full[name][:, 1]).all(), name
        # equal up to BLAS blocking, which depends on the batch shape
        np.testing.assert_allclose(
            full[name][[0, 3]][:, :1], clean[name], rtol=1e-12, atol=1e-15, err_msg=name
        )


def test_gcmi_too_many_columns_is_nan() -> None:
    rng = np.random.default_rng(9)
    assert np.isnan(compute("gcmi", rng.standard_normal((10, 6)), rng.standard_normal((10, 5))))
    assert np.isfinite(compute("gcmi", rng.standard_normal((12, 6)), rng.standard_normal((12, 5))))


# ---------------------------------------------------------------- batching, chunking, determinism, devices
def test_battery_equals_single_sentence_calls() -> None:
    rng = np.random.default_rng(10)
    X, Y = rng.standard_normal((3, 25, 2)), rng.standard_normal((2, 25, 4))
    res = compute_battery(X, Y, metrics=ALL)
    for name in ALL:
        single = np.array([[compute(name, x, y) for y in Y] for x in X])
        np.testing.assert_allclose(res[name], single, rtol=1e-12, atol=1e-14, err_msg=name)
    one_feature = compute_battery(X[:, :, 0], Y, metrics=["rsa_spearman"])["rsa_spearman"]
    np.testing.assert_array_equal(
        one_feature, compute_battery(X[:, :, :1], Y, metrics=["rsa_spearman"])["rsa_spearman"]
    )


def test_chunked_equals_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((5, 20, 3)), rng.standard_normal((3, 20, 4))
    whole = compute_battery(X, Y, metrics=ALL)
    from hearlike.metrics import _backend, battery, rsa

    monkeypatch.setattr(_backend, "MAX_BLOCK_ENTRIES", 20 * 20 * 2)
    monkeypatch.setattr(battery, "_GCMI_BLOCK_ENTRIES", 3 * 7 * 7)
    monkeypatch.setattr(rsa, "_KENDALL_BATCH_ENTRIES", 1)
    chunked = compute_battery(X, Y, metrics=ALL)
    for name in ALL:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_deterministic_on_cpu() -> None:
    rng = np.random.default_rng(12)
    X, Y = rng.standard_normal((4, 35, 3)), rng.standard_normal((3, 35, 6))
    first = compute_battery(X, Y, metrics=ALL)
    second = compute_battery(torch.from_numpy(X), Y.astype(np.float64), metrics=ALL)
    for name in ALL:
        np.testing.assert_array_equal(first[name], second[name])


def test_device_argument() -> None:
    x = np.random.default_rng(13).standard_normal((3, 10, 2))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            compute_battery(x, x, metrics=["rv"], device="cuda")
        auto = compute_battery(x, x, metrics=ALL, device="auto")
        cpu = compute_battery(x, x, metrics=ALL, device="cpu")
        for name in ALL:
            np.testing.assert_array_equal(auto[name], cpu[name])
    with pytest.raises(ValueError, match="unsupported device"):
        compute_battery(x, x, metrics=["rv"], device="meta")


def test_median_heuristic_twins() -> None:
    from hearlike.metrics import gram

    rng = np.random.default_rng(15)
    x = torch.from_numpy(np.round(rng.standard_normal((4, 30, 2)), 0))
    x[3] = 1.0  # no positive distance
    d2 = gram.distances(x).square()
    ref = [
        np.median(r[r > 0]) if (r > 0).any() else np.nan
        for r in (m[np.triu_indices(30, 1)] for m in d2.numpy())
    ]
    np.testing.assert_array_equal(gram.median_sq_distance(d2).numpy(), ref)
    v = d2[:, *torch.triu_indices(30, 30, 1)]
    np.testing.assert_array_equal(gram._nanmedian_sorted(torch.where(v > 0, v, torch.nan)).numpy(), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(14)
    X = np.round(rng.standard_normal((6, 80, 2)), 1)
    Y = rng.standard_normal((4, 80, 20))
    cpu = compute_battery(X, Y, metrics=ALL, device="cpu")
    gpu = compute_battery(X, Y, metrics=ALL, device="cuda")
    for name in ALL:
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-9, atol=1e-10, err_msg=name)
    assert torch.backends.cuda.matmul.allow_tf32 in (True, False)  # restored, whatever it was
