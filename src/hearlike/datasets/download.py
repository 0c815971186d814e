"""Download the two EEG datasets at pinned versions, write and verify a checksum manifest.

* ds004408 1.0.8 (OpenNeuro): openneuro-py ``openneuro.download(dataset="ds004408", tag="1.0.8", ...)``
  or DataLad (clone of ``github.com/OpenNeuroDatasets/ds004408`` + checkout of the 1.0.8 commit + get).
* Alice EEG as NEMAR nm000180 1.1.3: DataLad clone of ``github.com/nemarDatasets/nm000180``, checkout of
  commit ``03a81ca8…`` and ``datalad get`` of the annexed EEG; the stimulus wavs are ordinary git files.

Data go to a directory outside the repository (``--dest``, or ``$HEARLIKE_DATA/<dataset id>``). After a
download every file's sha256 is written to ``<root>/hearlike_checksums.tsv``; ``verify_checksums(root)``
names the files that changed or disappeared since.

The second half of this module checks that a recording on disk is complete (annexed content present,
BrainVision data file as long as its header and sidecar say) before MNE reads it.

CLI: ``python -m hearlike.datasets.download {ds004408,alice} --dest DIR [--method ...] [--subjects ...]
[--stimuli-only] [--dry-run] [--verify]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hearlike.datasets.base import DatasetError, subject_labels
from hearlike.io import sha256_file, write_tsv

log = logging.getLogger(__name__)

CHECKSUM_FILE = "hearlike_checksums.tsv"
CHECKSUM_COLUMNS = ("relpath", "bytes", "sha256")
DATA_ENV = "HEARLIKE_DATA"
_ANNEX_POINTER_PREFIX = b"/annex/objects/"


@dataclass(frozen=True)
class Source:
    """Where and at which version a dataset is fetched."""

    key: str
    dataset_id: str
    version: str
    git_url: str
    commit: str
    doi: str
    stimuli: tuple[str, ...]
    methods: tuple[str, ...]
    #: an openneuro-py snapshot tag, where the dataset is on OpenNeuro
    tag: str | None = None
    notes: str = ""


SOURCES: dict[str, Source] = {
    "ds004408": Source(
        key="ds004408",
        dataset_id="ds004408",
        version="1.0.8",
        git_url="https://github.com/OpenNeuroDatasets/ds004408.git",
        commit="b2d91784a90c18e1d76bd77dcb2b29b0ce27a0be",
        doi="10.18112/openneuro.ds004408.v1.0.8",
        stimuli=tuple(f"stimuli/audio{k:02d}.{ext}" for k in range(1, 21) for ext in ("wav", "TextGrid")),
        methods=("openneuro", "datalad"),
        tag="1.0.8",
    ),
    "alice": Source(
        key="alice",
        dataset_id="nm000180",
        version="1.1.3",
        git_url="https://github.com/nemarDatasets/nm000180.git",
        commit="03a81ca87bdbabb044dbc22ec95b596275432898",
        doi="10.82901/nemar.nm000180",
        stimuli=tuple(f"stimuli/DownTheRabbitHoleFinal_SoundFile{k}.wav" for k in range(1, 13)),
        methods=("datalad",),
        notes="stimulus wavs and sourcedata are plain git files; sub-*/eeg/*.vhdr/.eeg are annexed",
    ),
}


def repository_root() -> Path | None:
    """The hearlike checkout this module runs from (None for an installed copy)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "src" / "hearlike").is_dir():
            return parent
    return None


def default_dest(dataset: str) -> Path:
    """``$HEARLIKE_DATA/<dataset id>``; raises when the variable is unset."""
    base = os.environ.get(DATA_ENV)
    if not base:
        raise DatasetError(
            f"no --dest given and ${DATA_ENV} is unset; pass --dest DIR (outside the repository)."
        )
    return Path(base) / _source(dataset).dataset_id


def _source(dataset: str) -> Source:
    try:
        return SOURCES[dataset]
    except KeyError:
        raise DatasetError(f"unknown dataset {dataset!r}; choose one of {sorted(SOURCES)}") from None


def check_dest_outside_repository(dest: Path) -> None:
    """Refuse a destination inside this repository (GBs of data must not end up in git or Snakemake's view)."""
    root = repository_root()
    dest = dest.resolve()
    if root is not None and (dest == root or root in dest.parents):
        raise DatasetError(
            f"{dest}: the download destination is inside the repository {root}; "
            f"choose a directory outside it (e.g. ${DATA_ENV}/<dataset>)."
        )


def openneuro_kwargs(
    dataset: str, *, dest: Path, subjects: Sequence[str] | None = None, stimuli_only: bool = False
) -> dict[str, Any]:
    """Keyword arguments for ``openneuro.download`` (top-level BIDS files always come along)."""
    src = _source(dataset)
    if "openneuro" not in src.methods:
        raise DatasetError(f"{dataset} is not on OpenNeuro; use --method datalad")
    include: list[str] = ["stimuli"]
    if not stimuli_only:
        include += [f"sub-{s}" for s in subjects] if subjects else []
    kwargs: dict[str, Any] = {"dataset": src.dataset_id, "tag": src.tag, "target_dir": str(dest)}
    if stimuli_only or subjects:
        kwargs["include"] = include
    return kwargs


def datalad_commands(
    dataset: str, *, dest: Path, subjects: Sequence[str] | None = None, stimuli_only: bool = False
) -> list[list[str]]:
    """The shell commands of a DataLad download pinned to the dataset's commit."""
    src = _source(dataset)
    dest = Path(dest).resolve()
    if stimuli_only:
        targets = [str(dest / "stimuli")]
    elif subjects:
        targets = [str(dest / "stimuli"), *(str(dest / f"sub-{s}") for s in subjects)]
    else:
        targets = [str(dest)]
    return [
        ["datalad", "clone", src.git_url, str(dest)],
        ["git", "-C", str(dest), "checkout", "--quiet", "--detach", src.commit],
        ["datalad", "get", "--dataset", str(dest), *targets],
    ]


Runner = Callable[..., Any]


def download(
    dataset: str,
    *,
    dest: str | Path,
    method: str | None = None,
    subjects: Sequence[str] | None = None,
    stimuli_only: bool = False,
    dry_run: bool = False,
    runner: Runner = subprocess.run,
) -> Path:
    """Fetch ``dataset`` at its pinned version into ``dest`` and write the checksum manifest."""
    src = _source(dataset)
    dest = Path(dest).expanduser()
    check_dest_outside_repository(dest)
    method = method or src.methods[0]
    if method not in src.methods:
        raise DatasetError(f"{dataset}: method {method!r} not supported; use one of {list(src.methods)}")
    if method == "openneuro":
        kwargs = openneuro_kwargs(dataset, dest=dest, subjects=subjects, stimuli_only=stimuli_only)
        if dry_run:
            print(f"openneuro.download(**{kwargs!r})")
            return dest
        try:
            import openneuro  # type: ignore[import-not-found]
        except ImportError:
            raise DatasetError(
                "openneuro-py is not installed: pip install openneuro-py, or use --method datalad"
            ) from None
        dest.mkdir(parents=True, exist_ok=True)
        openneuro.download(**kwargs)
    else:
        commands = datalad_commands(dataset, dest=dest, subjects=subjects, stimuli_only=stimuli_only)
        if dry_run:
            for cmd in commands:
                print(" ".join(cmd))
            return dest
        for tool in ("datalad", "git", "git-annex"):
            if shutil.which(tool) is None:
                raise DatasetError(f"{tool} not found on PATH; install DataLad (it brings git-annex) first.")
        if (dest / ".git").exists():
            commands = commands[1:]  # already cloned: re-checkout and get what is missing
        elif dest.exists() and any(dest.iterdir()):
            raise DatasetError(f"{dest}: exists and is not a DataLad clone; choose an empty directory.")
        for cmd in commands:
            runner(cmd, check=True)
        head = runner(
            ["git", "-C", str(dest), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        )
        if head.stdout.strip() != src.commit:
            raise DatasetError(
                f"{dest}: HEAD is {head.stdout.strip()}, expected the pinned commit {src.commit}"
            )
    check_version(dest, dataset)
    missing = [p for p in src.stimuli if not content_present(dest / p)]
    if missing:
        raise DatasetError(
            f"{dest}: stimuli missing after download: {missing[:5]} (+{max(0, len(missing) - 5)} more)"
        )
    write_checksums(dest)
    return dest


def check_version(root: str | Path, dataset: str) -> None:
    """Check that ``dataset_description.json`` is that of the pinned version."""
    src = _source(dataset)
    path = Path(root) / "dataset_description.json"
    if not path.exists():
        raise DatasetError(f"{path}: missing; {root} is not a BIDS dataset root.")
    desc = json.loads(path.read_text(encoding="utf-8-sig"))
    found = str(desc.get("Version") or desc.get("DatasetDOI") or "")
    if src.version not in found and src.doi not in found:
        raise DatasetError(
            f"{path}: version {found or 'unknown'} is not the pinned {src.dataset_id} {src.version}; re-download."
        )


# ------------------------------------------------------------------------------------------------
# checksum manifest


def is_annex_pointer(path: Path) -> bool:
    """True for git-annex content that was not fetched (broken symlink or unlocked pointer file)."""
    if path.is_symlink() and not path.exists():
        return True
    try:
        if path.stat().st_size > 1024:
            return False
        with open(path, "rb") as f:
            return f.read(len(_ANNEX_POINTER_PREFIX)) == _ANNEX_POINTER_PREFIX
    except OSError:
        return False


def content_present(path: Path) -> bool:
    """The file exists and holds its real content, not an annex pointer."""
    return path.exists() and not is_annex_pointer(path)


def _data_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.parent == root and name == CHECKSUM_FILE:
                continue
            files.append(p)
    return files


def write_checksums(root: str | Path) -> Path:
    """Write ``relpath bytes sha256`` of every downloaded file to ``<root>/hearlike_checksums.tsv``.

    Annexed files whose content was not fetched are left out (and counted in the log).
    """
    root = Path(root)
    rows, skipped = [], 0
    for p in _data_files(root):
        if is_annex_pointer(p):
            skipped += 1
            continue
        rows.append((p.relative_to(root).as_posix(), p.stat().st_size, sha256_file(p)))
    out = root / CHECKSUM_FILE
    write_tsv(pd.DataFrame(rows, columns=list(CHECKSUM_COLUMNS)), out)
    log.info("%s: %d files hashed, %d annexed files without content skipped", out, len(rows), skipped)
    return out


@dataclass
class ChecksumReport:
    """Outcome of :func:`verify_checksums`."""

    root: Path
    n_checked: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing

    def raise_for_problems(self) -> None:
        """Raise a DatasetError that names the changed and missing files."""
        if self.ok:
            return
        parts = []
        if self.mismatched:
            parts.append(
                f"changed: {', '.join(self.mismatched[:20])}" + (" …" if len(self.mismatched) > 20 else "")
            )
        if self.missing:
            parts.append(
                f"missing: {', '.join(self.missing[:20])}" + (" …" if len(self.missing) > 20 else "")
            )
        raise DatasetError(
            f"{self.root / CHECKSUM_FILE}: {len(self.mismatched)} changed and {len(self.missing)} missing "
            f"file(s) — {'; '.join(parts)}. Re-download them (python -m hearlike.datasets.download)."
        )


def verify_checksums(root: str | Path) -> ChecksumReport:
    """Compare the files under ``root`` with its checksum manifest; size first, then sha256."""
    root = Path(root)
    manifest = root / CHECKSUM_FILE
    if not manifest.exists():
        raise DatasetError(
            f"{manifest}: checksum manifest not found; run the download (it writes one) first."
        )
    table = pd.read_csv(manifest, sep="\t", dtype={"relpath": str, "sha256": str}, keep_default_na=False)
    missing_cols = [c for c in CHECKSUM_COLUMNS if c not in table.columns]
    if missing_cols:
        raise DatasetError(
            f"{manifest}: missing column(s) {missing_cols}; rewrite it with write_checksums()."
        )
    report = ChecksumReport(root=root)
    for rel, size, digest in table[list(CHECKSUM_COLUMNS)].itertuples(index=False):
        p = root / rel
        report.n_checked += 1
        if not content_present(p):
            report.missing.append(rel)
        elif p.stat().st_size != int(size) or sha256_file(p) != digest:
            report.mismatched.append(rel)
    return report


DOWNLOAD_METHODS = ("none", "openneuro", "datalad")


def fetch_step(
    *,
    dataset: str,
    bids_root: str | Path,
    method: str,
    subjects: Sequence[str] | str | None,
    out: str | Path,
    runner: Runner = subprocess.run,
) -> pd.DataFrame:
    """The workflow's ``fetch_dataset`` job: make sure the pinned dataset is at ``bids_root`` and intact.

    Absent data are downloaded with ``method`` (``none``: stop and say how). Present data must be the pinned
    version; their checksum manifest is verified, or, for data put there by hand, written on first use.
    The manifest that was checked is copied to ``out`` (the study's record of its input files).
    """
    root = Path(bids_root)
    if method not in DOWNLOAD_METHODS:
        raise DatasetError(f"config.yaml datasets.*.download: {method!r} is not one of {DOWNLOAD_METHODS}")
    if not (root / "dataset_description.json").exists():
        if method == "none":
            raise DatasetError(
                f"{root / 'dataset_description.json'}: not found, so {dataset} is not at {root}. Download it once "
                f"(python -m hearlike.datasets.download {dataset} --dest {root}) or set the dataset's "
                f"`download:` to one of {DOWNLOAD_METHODS[1:]} in config.yaml to let the workflow fetch it."
            )
        download(dataset, dest=root, method=method, subjects=subject_labels(subjects), runner=runner)
    check_version(root, dataset)
    manifest = root / CHECKSUM_FILE
    if manifest.exists():
        report = verify_checksums(root)
        report.raise_for_problems()
        log.info("%s: %d files verified against the manifest", root, report.n_checked)
    else:
        log.warning("%s: no checksum manifest (data not fetched by hearlike); writing one now", root)
        try:
            write_checksums(root)
        except OSError as exc:  # a read-only data location: keep the record in results/ only
            log.warning("%s: cannot write the manifest there (%s); recording it under results/ only", root, exc)
            rows = [(p.relative_to(root).as_posix(), p.stat().st_size, sha256_file(p))
                    for p in _data_files(root) if not is_annex_pointer(p)]
            table = pd.DataFrame(rows, columns=list(CHECKSUM_COLUMNS))
            write_tsv(table, out)
            return table
    table = pd.read_csv(manifest, sep="\t", dtype={"relpath": str, "sha256": str}, keep_default_na=False)
    write_tsv(table, out)
    return table


# ------------------------------------------------------------------------------------------------
# integrity of one BrainVision recording (shared by the adapters)

_BYTES_PER_SAMPLE = {"IEEE_FLOAT_32": 4, "INT_16": 2, "INT_32": 4, "UINT_16": 2}


@dataclass(frozen=True)
class BrainVisionHeader:
    """The fields of a ``.vhdr`` that decide how long the data file must be."""

    path: Path
    data_file: Path
    marker_file: Path | None
    n_channels: int
    sfreq: float
    bytes_per_sample: int | None
    channel_names: tuple[str, ...]


def require_content(path: Path, *, what: str, fix: str) -> None:
    """Raise a DatasetError when a file is absent or only an un-fetched annex pointer."""
    if is_annex_pointer(path):
        raise DatasetError(
            f"{path}: {what} is a git-annex pointer without content; run `datalad get {path}`."
        )
    if not path.exists():
        raise DatasetError(f"{path}: {what} not found; {fix}")


def read_brainvision_header(vhdr: Path) -> BrainVisionHeader:
    """Parse the parts of a BrainVision header needed for the integrity checks."""
    require_content(vhdr, what="BrainVision header", fix="download the recording again.")
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    # a hand-rolled reader: [Comment] sections hold free text that configparser rejects
    for line in vhdr.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif current is not None and "=" in line and not line.startswith(";"):
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    common = sections.get("Common Infos", {})
    try:
        n_channels = int(common["NumberOfChannels"])
        sfreq = 1e6 / float(common["SamplingInterval"])
        data_file = vhdr.parent / common["DataFile"]
    except (KeyError, ValueError, ZeroDivisionError) as exc:
        raise DatasetError(f"{vhdr}: malformed BrainVision header ({exc!r}); download it again.") from exc
    marker = vhdr.parent / common["MarkerFile"] if "MarkerFile" in common else None
    fmt = sections.get("Binary Infos", {}).get("BinaryFormat", "")
    names = [
        value.split(",")[0].replace("\\1", ",")
        for key, value in sections.get("Channel Infos", {}).items()
        if key.startswith("Ch")
    ]
    return BrainVisionHeader(
        path=vhdr,
        data_file=data_file,
        marker_file=marker,
        n_channels=n_channels,
        sfreq=sfreq,
        bytes_per_sample=_BYTES_PER_SAMPLE.get(fmt.strip()),
        channel_names=tuple(names),
    )


def check_brainvision_recording(*, vhdr: Path, sidecar: Path, channels_tsv: Path) -> BrainVisionHeader:
    """Check a BIDS BrainVision recording before reading it.

    Files present with content; sampling rate equal in ``.vhdr``, ``_eeg.json`` and ``_channels.tsv``;
    data file a whole number of samples long and as long as the sidecar's ``RecordingDuration``.
    """
    require_content(sidecar, what="EEG sidecar (_eeg.json)", fix="download the dataset's metadata again.")
    require_content(channels_tsv, what="channels sidecar (_channels.tsv)", fix="download the metadata again.")
    header = read_brainvision_header(vhdr)
    require_content(header.data_file, what="BrainVision data file", fix="download the recording again.")
    if header.marker_file is not None:
        require_content(
            header.marker_file, what="BrainVision marker file", fix="download the recording again."
        )
    meta = json.loads(sidecar.read_text(encoding="utf-8-sig"))
    side_sfreq = meta.get("SamplingFrequency")
    if not isinstance(side_sfreq, int | float):
        raise DatasetError(f"{sidecar}: SamplingFrequency is missing or not a number ({side_sfreq!r}).")
    if abs(float(side_sfreq) - header.sfreq) > 1e-6 * header.sfreq:
        raise DatasetError(
            f"{vhdr}: sampling rate {header.sfreq:g} Hz disagrees with {sidecar.name} ({side_sfreq:g} Hz); "
            "one of the two files is not from this recording — download both again."
        )
    channels = pd.read_csv(
        channels_tsv, sep="\t", dtype={"name": str}, encoding="utf-8-sig", na_values=["n/a"]
    )
    if "sampling_frequency" in channels.columns:
        rates = channels["sampling_frequency"].dropna().astype(float).unique()
        if len(rates) and (abs(rates - header.sfreq) > 1e-6 * header.sfreq).any():
            raise DatasetError(
                f"{channels_tsv}: sampling_frequency {sorted(rates)} disagrees with {vhdr.name} ({header.sfreq:g} Hz)."
            )
    if header.bytes_per_sample is not None:
        frame = header.n_channels * header.bytes_per_sample
        size = header.data_file.stat().st_size
        if size == 0 or size % frame:
            raise DatasetError(
                f"{header.data_file}: {size} bytes is not a whole number of {header.n_channels}-channel samples; "
                "the file is truncated — download it again."
            )
        n_times = size // frame
        duration = meta.get("RecordingDuration")
        if isinstance(duration, int | float):
            expected = round(float(duration) * header.sfreq) + 1
            if abs(n_times - expected) > 1:
                kind = "truncated" if n_times < expected else "longer than its sidecar says"
                raise DatasetError(
                    f"{header.data_file}: holds {n_times} samples but {sidecar.name} RecordingDuration "
                    f"{duration} s implies {expected}; the data file is {kind} — download it again."
                )
    return header


# ------------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hearlike.datasets.download {ds004408,alice} --dest DIR``."""
    ap = argparse.ArgumentParser(
        prog="python -m hearlike.datasets.download", description=__doc__.split("\n")[0]
    )
    ap.add_argument("dataset", choices=sorted(SOURCES))
    ap.add_argument(
        "--dest", type=Path, help=f"target directory outside the repository (default ${DATA_ENV}/<id>)"
    )
    ap.add_argument("--method", choices=["openneuro", "datalad"], help="default: openneuro for ds004408")
    ap.add_argument(
        "--subjects", nargs="+", metavar="LABEL", help="only these subjects (labels without sub-)"
    )
    ap.add_argument(
        "--stimuli-only", action="store_true", help="only the stimulus files (+ top-level metadata)"
    )
    ap.add_argument("--dry-run", action="store_true", help="print what would run")
    ap.add_argument(
        "--verify", action="store_true", help="only verify an earlier download's checksum manifest"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        dest = args.dest if args.dest is not None else default_dest(args.dataset)
        if args.verify:
            report = verify_checksums(dest)
            print(f"{dest}: {report.n_checked} files checked")
            report.raise_for_problems()
            return 0
        download(
            args.dataset,
            dest=dest,
            method=args.method,
            subjects=args.subjects,
            stimuli_only=args.stimuli_only,
            dry_run=args.dry_run,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
