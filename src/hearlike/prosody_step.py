"""Workflow steps for prosody, TNC labelling and the affective dissociation (negative vs other sentences)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hearlike import tnc as tnc_mod
from hearlike.affect import provisional_labels
from hearlike.io import load_npz_dict, read_tsv, sentence_key, write_tsv
from hearlike.prosody import sentence_prosody
from hearlike.seeding import derive_seed
from hearlike.stats import bh_fdr, fisher_z, inverse_fisher_z, paired_comparison

log = logging.getLogger(__name__)
UNIT = ["model", "layer", "metric"]
MIN_GROUP_SENTENCES = 2  # a group mean, and a negative-vs-other comparison, needs at least this many sentences
MIN_SUBJECTS = 2  # the sign-flip test across subjects needs at least this many subjects with both groups
GROUP_COLUMNS = ["model", "layer", "metric", "family", "group", "mean", "n", "reason"]
DISSOCIATION_COLUMNS = ["model", "layer", "metric", "family", "diff", "effect_size", "p_signflip", "n_subjects",
                        "n_negative", "n_other", "q_fdr", "reason"]
SUBJECT_COLUMNS = ["subject", "model", "layer", "metric", "group", "value", "n", "reason"]
SELECTION_METRIC = "rsa_spearman"  # picks the model layer for the TNC model space when tnc.model_layer is "best"
EEG_FRAME_S = 0.02  # EEG is block-averaged to 20 ms frames before its sentence RDM is taken


def sentence_prosody_table(*, audio: Path, words: Path, f0_floor: float, f0_ceiling: float, egemaps: bool,
                           label_rule: str, label_threshold: float, out: Path) -> pd.DataFrame:
    """Step function: acoustic prosody per sentence plus its provisional affect label."""
    clips, meta = load_npz_dict(audio)
    signals = {int(k[1:]): v for k, v in clips.items()}
    feats = sentence_prosody(audio=signals, sr=int(meta["sr"]), words=read_tsv(words), f0_floor=f0_floor,
                             f0_ceiling=f0_ceiling, egemaps=egemaps)
    labels = provisional_labels(features=feats, rule=label_rule, threshold=label_threshold)
    table = feats.merge(labels, on="sentence_id", how="left")
    write_tsv(table, out)
    log.info("provisional labels (%s): %s", label_rule, table["provisional_label"].value_counts().to_dict())
    return table


def _block_average(x: np.ndarray, sfreq: float, frame_s: float) -> np.ndarray:
    """(C × Ns) → (T × C) means over consecutive ``frame_s`` blocks."""
    n = max(1, round(frame_s * sfreq))
    T = x.shape[1] // n
    return x[:, : T * n].reshape(x.shape[0], T, n).mean(axis=2).T


def choose_model_layer(profile: pd.DataFrame, setting: str, models: Sequence[str]) -> tuple[str, str]:
    """(model, layer) for the TNC model space: the best by RSA-Spearman, or ``model:layer`` / ``layer``."""
    if setting == "best":
        rows = profile[(profile["metric"] == SELECTION_METRIC) & profile["model"].isin(models)]
        if rows.empty or rows["mean"].isna().all():
            raise ValueError(f"tnc.model_layer is 'best' but the layer profile has no {SELECTION_METRIC} values")
        best = rows.loc[rows["mean"].idxmax()]
        return str(best["model"]), str(best["layer"])
    model, _, layer = setting.rpartition(":")
    return (model or models[0]), layer


def most_acoustic_layer(by_model: Mapping[str, Path], acoustic: np.ndarray, sids: Sequence[int],
                        k: int | str) -> tuple[str, str, np.ndarray]:
    """The (model, layer) whose sentence neighbourhoods overlap most with the acoustic space's.

    A label-free choice (the provisional labels play no part), so TNC's label consistency is not
    inflated by the selection: it picks the layer that carries the sentences' acoustic geometry.
    """
    from hearlike.models.cache import load_manifest, read_layer

    kk = tnc_mod.resolve_k(k, len(sids))
    ref = tnc_mod.neighbour_sets(tnc_mod.correlation_distance(acoustic), k=kk)
    best: tuple[float, str, str, np.ndarray] | None = None
    for model, path in sorted(by_model.items()):
        for layer in (entry["name"] for entry in load_manifest(path)["layers"]):
            states = {sid: s for sid, (s, _) in read_layer(path / f"{layer}.safetensors").items()}
            M = tnc_mod.model_descriptor(features=states, sentence_ids=sids)
            nb = tnc_mod.neighbour_sets(tnc_mod.correlation_distance(M), k=kk)
            score = float(np.mean(tnc_mod.neighbourhood_overlap(ref, nb)))
            if best is None or score > best[0]:
                best = (score, model, layer, M)
    if best is None:
        raise ValueError("tnc.model_layer is 'acoustic' but no model activations were given")
    log.info("TNC model space: %s %s (neighbourhood overlap with the acoustic space %.2f)", best[1], best[2], best[0])
    return best[1], best[2], best[3]


def tnc_step(*, prosody: Path, segments: Sequence[Path], profile: Path, activations: Sequence[Path],
             tnc: Mapping[str, Any], seed: int, out_labels: Path, out_null: Path) -> pd.DataFrame:
    """Step function: TNC labels (negative-prosody / control / excluded) and the agreement null.

    Both tables carry a ``reason`` column (NaN normally). Too few sentences for ``k`` neighbours: every
    sentence is excluded with NaN scores and the reason, and a WARNING is logged; so is a TNC that calls
    fewer than :data:`MIN_GROUP_SENTENCES` sentences negative or control.
    """
    from hearlike.models.cache import read_layer

    feats = read_tsv(prosody)
    sids = feats["sentence_id"].astype(int).tolist()
    negative = feats["provisional_label"].to_numpy() == "negative"
    reason = tnc_mod.too_few_items(tnc["k"], len(sids))
    if reason is not None:
        # checked before any EEG or activations are read: nothing downstream of this can be computed
        log.warning("TNC not computed: %s; every sentence is excluded", reason)
        labels = tnc_mod.undefined_labels(provisional=negative, sentence_ids=sids).assign(reason=reason)
        labels.insert(1, "model", np.nan)
        labels.insert(2, "layer", np.nan)
        null = tnc_mod.undefined_agreement_null(n_permutations=tnc["n_permutations"], permute=("eeg", "model"))
        write_tsv(labels, out_labels)
        write_tsv(null.assign(reason=reason), out_null)
        return labels
    eeg: dict[str, dict[int, np.ndarray]] = {}
    for path in segments:
        arrays, meta = load_npz_dict(path)
        eeg[meta["subject"]] = {sid: _block_average(arrays[sentence_key(sid)], float(meta["sfreq"]), EEG_FRAME_S)
                                for sid in sids if sentence_key(sid) in arrays}
    by_model = {p.name: p for p in activations}
    A = tnc_mod.acoustic_descriptor(features=feats, sentence_ids=sids)
    if tnc["model_layer"] == "acoustic":
        model, layer, M = most_acoustic_layer(by_model, A, sids, k=tnc["k"])
    else:
        model, layer = choose_model_layer(read_tsv(profile), tnc["model_layer"], list(by_model))
        states = {sid: s for sid, (s, _) in read_layer(by_model[model] / f"{layer}.safetensors").items()}
        M = tnc_mod.model_descriptor(features=states, sentence_ids=sids)
    E = tnc_mod.eeg_descriptor(eeg=eeg, sentence_ids=sids)
    labels = tnc_mod.tnc_labels(acoustic=A, eeg=E, model=M, provisional=negative, k=tnc["k"], tau=tnc["tau"],
                                n_permutations=tnc["n_permutations"], seed=derive_seed(seed, "tnc"), sentence_ids=sids)
    labels.insert(1, "model", model)
    labels.insert(2, "layer", layer)
    null = tnc_mod.neighbourhood_agreement_null(acoustic=A, eeg=E, model=M, k=tnc["k"],
                                                n_permutations=tnc["n_permutations"], seed=derive_seed(seed, "tnc-null"),
                                                permute=("eeg", "model"))
    labels["reason"] = np.nan
    write_tsv(labels, out_labels)
    write_tsv(null.assign(reason=np.nan), out_null)
    counts = labels["group"].value_counts().to_dict()
    log.info("TNC with %s %s: %s", model, layer, counts)
    small = {g: counts.get(g, 0) for g in ("negative", "control") if counts.get(g, 0) < MIN_GROUP_SENTENCES}
    if small:
        log.warning("TNC called %s sentence(s) (fewer than %d): the negative-vs-other comparison will be undefined",
                    ", ".join(f"{n} {g}" for g, n in small.items()), MIN_GROUP_SENTENCES)
    return labels


def duration_residuals(df: pd.DataFrame, *, value: str = "v", duration: str = "log_duration") -> np.ndarray:
    """``value`` with its linear dependence on log sentence duration removed (grand mean kept).

    All metrics depend on the number of frames, and negative-prosody sentences are slower (longer), so
    groups are compared after regressing out log duration within each (subject, model, layer, metric).
    """
    y = df[value].to_numpy(float)
    x = df[duration].to_numpy(float)
    ok = np.isfinite(y) & np.isfinite(x)
    out = np.full_like(y, np.nan)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        out[ok] = y[ok]
        return out
    slope, _intercept = np.polyfit(x[ok], y[ok], 1)
    out[ok] = y[ok] - slope * (x[ok] - x[ok].mean())
    return out


def prosody_groups(*, values: Sequence[Path], labels: Path, sentences: Path, families: Mapping[str, str],
                   statistics: Mapping[str, Any], seed: int, out_groups: Path, out_dissociation: Path,
                   out_subjects: Path) -> pd.DataFrame:
    """Step function: negative vs other (TNC control) sentences, per (model, layer, metric).

    ``prosody_groups.tsv``: sentence-level means per group (averaged over subjects; Fisher z for RSA),
    both groups for every (model, layer, metric).
    ``affective_dissociation.tsv``: per subject, the duration-adjusted mean of value − null (the sentence's
    EEG-side mismatch null) over negative minus the mean over control sentences; sign-flip test across
    subjects (two-sided), d_z, BH-FDR over models × layers × metrics; ``n_negative``/``n_other`` count the
    sentences.

    Too few items (fewer than :data:`MIN_GROUP_SENTENCES` sentences in a group, fewer than
    :data:`MIN_SUBJECTS` subjects with both groups, no values at all) give NaN numbers, a ``reason``
    (NaN on normal rows) and a WARNING in the log; every table keeps its full header.
    """
    from hearlike.aggregate import fisher_metrics

    table = pd.concat([read_tsv(p, dtype={"subject": str}) for p in values], ignore_index=True)
    if "lag_ms" in table:
        # the dissociation is reported at the paper's lag 0 (the lag sweep qualifies the layer profile)
        table = table[table["lag_ms"] == 0]
    lab = read_tsv(labels)[["sentence_id", "group"]]
    dur = read_tsv(sentences)[["sentence_id", "duration_s"]]
    df = table.merge(lab, on="sentence_id").merge(dur, on="sentence_id")
    fz = set(fisher_metrics(df["metric"].unique()))
    df["v"] = np.where(df["metric"].isin(fz), fisher_z(df["value"].to_numpy(float)), df["value"])
    if "null_mean" in df:
        # the dissociation compares value − null per sentence (the EEG-side mismatch null of that sentence):
        # raw values differ between groups of different length or smoothness even without any alignment
        null = df["null_mean"].to_numpy(float)
        df["v_above"] = df["v"] - np.where(df["metric"].isin(fz), fisher_z(null), null)
    else:
        df["v_above"] = df["v"]
    df["log_duration"] = np.log(df["duration_s"])
    keys = ["subject", "model", "layer", "metric"]
    df["v_adj"] = np.nan
    for _, idx in df.groupby(keys).groups.items():
        df.loc[idx, "v_adj"] = duration_residuals(df.loc[idx], value="v_above")
    units = table[UNIT].drop_duplicates().sort_values(UNIT).reset_index(drop=True)
    df = df[df["group"].isin(["negative", "control"])]

    per_subject = df.groupby([*keys, "group"]).agg(value=("v_adj", "mean"), n=("v_adj", "count")).reset_index()
    subjects_out = per_subject.assign(value=np.where(per_subject["metric"].isin(fz),
                                                     inverse_fisher_z(per_subject["value"].to_numpy(float)),
                                                     per_subject["value"]), reason=np.nan)
    if subjects_out.empty:
        subjects_out = _reason_row(SUBJECT_COLUMNS, "no subject has a value for a negative or other sentence")
        log.warning("prosody subject values: no subject has a value for a negative or other sentence")
    write_tsv(subjects_out[SUBJECT_COLUMNS], out_subjects)

    sent = df.groupby([*UNIT, "group", "sentence_id"])["v"].mean().reset_index()
    groups = _group_means(sent, units, fz, families)
    write_tsv(groups, out_groups)

    n_sentences = {(*unit, group): n for *unit, group, n in groups[[*UNIT, "group", "n"]].itertuples(index=False)}
    wide = per_subject.pivot_table(index=[*UNIT, "subject"], columns="group", values="value") \
        if len(per_subject) else pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=[*UNIT, "subject"]))
    wide = wide.reindex(columns=["negative", "control"]).dropna().reset_index()  # subjects with both groups
    by_unit = {key: g for key, g in wide.groupby(UNIT)}
    rows = []
    for unit in units.itertuples(index=False, name=None):
        model, layer, metric = unit
        n_neg, n_other = n_sentences.get((*unit, "negative"), 0), n_sentences.get((*unit, "other"), 0)
        row = dict(model=model, layer=layer, metric=metric, family=families.get(metric), diff=np.nan,
                   effect_size=np.nan, p_signflip=np.nan, n_subjects=0, n_negative=n_neg, n_other=n_other,
                   reason=np.nan)
        both = by_unit.get(unit, wide.iloc[0:0])
        n_sub = len(both)
        if min(n_neg, n_other) < MIN_GROUP_SENTENCES:
            row.update(n_subjects=n_sub, reason=f"{n_neg} negative and {n_other} other sentence(s) with values: "
                                                f"the comparison needs at least {MIN_GROUP_SENTENCES} in each group")
        elif n_sub < MIN_SUBJECTS:
            row.update(n_subjects=n_sub, reason=f"{n_sub} subject(s) with both groups: the test across "
                                                f"subjects needs at least {MIN_SUBJECTS}")
        else:
            res = paired_comparison(both["negative"].to_numpy(float), both["control"].to_numpy(float),
                                    alternative="two-sided", n_perm=statistics["n_signflip"], hedges=True,
                                    rng=derive_seed(seed, "dissociation", model, layer, metric))
            row.update(diff=res.mean_diff, effect_size=res.dz, p_signflip=res.p_value, n_subjects=res.n_subjects)
        rows.append(row)
    diss = pd.DataFrame(rows, columns=[c for c in DISSOCIATION_COLUMNS if c != "q_fdr"])
    diss["q_fdr"] = bh_fdr(diss["p_signflip"].to_numpy(float))
    if diss.empty:
        diss = _reason_row(DISSOCIATION_COLUMNS, "no metric values: nothing to compare")
    diss = diss[DISSOCIATION_COLUMNS]
    _warn_reasons("affective dissociation", diss)
    write_tsv(diss, out_dissociation)
    return diss


def _reason_row(columns: Sequence[str], reason: str) -> pd.DataFrame:
    """One row of NaN with ``reason``: an analysis that could not run says why instead of writing nothing."""
    return pd.DataFrame([{c: (reason if c == "reason" else np.nan) for c in columns}], columns=list(columns))


def _warn_reasons(table: str, df: pd.DataFrame) -> None:
    bad = df["reason"].notna()
    if bad.any():
        log.warning("%s: %d of %d rows undefined: %s", table, int(bad.sum()), len(df),
                    "; ".join(sorted(set(df.loc[bad, "reason"].astype(str)))[:5]))


def _group_means(sent: pd.DataFrame, units: pd.DataFrame, fisher: set[str],
                 families: Mapping[str, str]) -> pd.DataFrame:
    """``prosody_groups`` rows: both groups for every unit; fewer than 2 sentences → NaN mean and a reason."""
    means = sent.groupby([*UNIT, "group"]).agg(mean=("v", "mean"), n=("v", "count")).reset_index()
    grid = units.merge(pd.DataFrame({"group": ["negative", "control"]}), how="cross")
    groups = grid.merge(means, on=[*UNIT, "group"], how="left")
    groups["n"] = groups["n"].fillna(0).astype(int)
    groups["mean"] = np.where(groups["metric"].isin(fisher), inverse_fisher_z(groups["mean"].to_numpy(float)),
                              groups["mean"])
    groups["family"] = groups["metric"].map(families)
    groups["group"] = groups["group"].replace({"control": "other"})
    few = groups["n"] < MIN_GROUP_SENTENCES
    # one sentence is an anecdote, not a group: no mean, and the row says why
    groups.loc[few, "mean"] = np.nan
    groups["reason"] = [f"{n} {g} sentence(s) with values, fewer than {MIN_GROUP_SENTENCES}: no group mean"
                        if short else np.nan for n, g, short in zip(groups["n"], groups["group"], few, strict=True)]
    if groups.empty:
        groups = _reason_row(GROUP_COLUMNS, "no metric values: no group means")
    groups = groups[GROUP_COLUMNS]
    _warn_reasons("prosody groups", groups)
    return groups
