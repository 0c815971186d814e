"""Download code (offline): pinned commands, destination rule, checksum manifest and its verification."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from hearlike.datasets import download as dl
from hearlike.datasets.base import DatasetError

DATA = Path(__file__).parent / "data"
NM_COMMIT = "03a81ca87bdbabb044dbc22ec95b596275432898"


def test_pins():
    assert dl.SOURCES["ds004408"].tag == "1.0.8" and dl.SOURCES["ds004408"].version == "1.0.8"
    assert dl.SOURCES["alice"].commit == NM_COMMIT and dl.SOURCES["alice"].version == "1.1.3"
    assert len(dl.SOURCES["ds004408"].stimuli) == 40  # audio01–20 .wav + .TextGrid
    assert dl.SOURCES["alice"].stimuli[-1] == "stimuli/DownTheRabbitHoleFinal_SoundFile12.wav"


def test_openneuro_call(tmp_path):
    kw = dl.openneuro_kwargs("ds004408", dest=tmp_path)
    assert kw == {"dataset": "ds004408", "tag": "1.0.8", "target_dir": str(tmp_path)}
    kw = dl.openneuro_kwargs("ds004408", dest=tmp_path, subjects=["001", "002"])
    assert kw["include"] == ["stimuli", "sub-001", "sub-002"]
    assert dl.openneuro_kwargs("ds004408", dest=tmp_path, stimuli_only=True)["include"] == ["stimuli"]
    with pytest.raises(DatasetError, match="not on OpenNeuro"):
        dl.openneuro_kwargs("alice", dest=tmp_path)


def test_datalad_commands_pin_the_commit(tmp_path):
    cmds = dl.datalad_commands("alice", dest=tmp_path / "nm", subjects=["001"])
    assert cmds[0] == [
        "datalad",
        "clone",
        "https://github.com/nemarDatasets/nm000180.git",
        str(tmp_path / "nm"),
    ]
    assert cmds[1][-1] == NM_COMMIT and "checkout" in cmds[1]
    assert cmds[2][:4] == ["datalad", "get", "--dataset", str(tmp_path / "nm")]
    assert cmds[2][4:] == [str(tmp_path / "nm" / "stimuli"), str(tmp_path / "nm" / "sub-001")]
    ds = dl.datalad_commands("ds004408", dest=tmp_path / "ds")
    assert ds[1][-1] == "b2d91784a90c18e1d76bd77dcb2b29b0ce27a0be" and ds[2][-1] == str(tmp_path / "ds")


def test_destination_must_be_outside_the_repository(tmp_path):
    root = dl.repository_root()
    assert root is not None and (root / "pyproject.toml").exists()
    with pytest.raises(DatasetError, match="inside the repository"):
        dl.download("ds004408", dest=root / "data" / "ds004408", dry_run=True)
    assert dl.download("ds004408", dest=tmp_path / "ds", dry_run=True) == tmp_path / "ds"


def test_datalad_download_with_a_fake_runner(tmp_path, monkeypatch):
    """The whole DataLad path against a stand-in for the tools: pin check, stimuli check, manifest."""
    monkeypatch.setattr(dl.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    dest = tmp_path / "nm000180"
    calls: list[list[str]] = []

    def runner(cmd, check, capture_output=False, text=False):
        calls.append(cmd)
        if cmd[:2] == ["datalad", "clone"]:
            shutil.copytree(DATA / "nm000180", dest)
            (dest / ".git").mkdir()
            (dest / "stimuli").mkdir()
            for k in range(1, 13):
                (dest / "stimuli" / f"DownTheRabbitHoleFinal_SoundFile{k}.wav").write_bytes(
                    b"RIFF" + bytes(k)
                )
            eeg = dest / "sub-001" / "eeg" / "sub-001_task-alicelistening_eeg.eeg"
            eeg.write_text("/annex/objects/SHA256E-s90898200--0f.eeg\n")  # not fetched
        return SimpleNamespace(stdout=NM_COMMIT + "\n", returncode=0)

    out = dl.download("alice", dest=dest, subjects=["001"], runner=runner)
    assert out == dest and calls[-1][-2:] == ["rev-parse", "HEAD"]
    table = pd.read_csv(dest / dl.CHECKSUM_FILE, sep="\t")
    assert list(table.columns) == list(dl.CHECKSUM_COLUMNS)
    assert "sourcedata/AliceChapterOne-EEG.csv" in set(table["relpath"])
    assert "sub-001/eeg/sub-001_task-alicelistening_eeg.eeg" not in set(table["relpath"])  # pointer skipped
    csv_row = table[table["relpath"] == "sourcedata/AliceChapterOne-EEG.csv"].iloc[0]
    manifest = pd.read_csv(DATA / "MANIFEST.tsv", sep="\t")
    real = manifest[manifest["relpath"] == "sourcedata/AliceChapterOne-EEG.csv"].iloc[0]
    assert csv_row["sha256"] == real["sha256"] and csv_row["bytes"] == real["bytes"]
    assert dl.verify_checksums(dest).ok

    def wrong_head(cmd, check, capture_output=False, text=False):
        return SimpleNamespace(stdout="deadbeef\n", returncode=0)

    with pytest.raises(DatasetError, match=f"expected the pinned commit {NM_COMMIT}"):
        dl.download("alice", dest=dest, runner=wrong_head)


def test_checksum_manifest_reports_changed_and_missing_files(tmp_path):
    root = Path(shutil.copytree(DATA / "ds004408", tmp_path / "ds004408"))
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("ignored")
    (root / "stimuli" / "audio05.wav").symlink_to("../.git/annex/objects/XX/audio05.wav")  # not fetched
    path = dl.write_checksums(root)
    table = pd.read_csv(path, sep="\t")
    assert len(table) == len([p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]) - 1
    assert not table["relpath"].str.startswith(".git").any()
    assert "stimuli/audio05.wav" not in set(table["relpath"])
    report = dl.verify_checksums(root)
    assert report.ok and report.n_checked == len(table)

    (root / "README").write_text("edited")
    (root / "sub-001" / "eeg" / "sub-001_task-listening_run-02_channels.tsv").unlink()
    report = dl.verify_checksums(root)
    assert report.mismatched == ["README"]
    assert report.missing == ["sub-001/eeg/sub-001_task-listening_run-02_channels.tsv"]
    with pytest.raises(
        DatasetError, match=r"1 changed and 1 missing.*changed: README; missing: sub-001/eeg/"
    ):
        report.raise_for_problems()
    rc = dl.main(["ds004408", "--dest", str(root), "--verify"])
    assert rc == 1
    with pytest.raises(DatasetError, match="checksum manifest not found"):
        dl.verify_checksums(tmp_path)


def test_version_check(tmp_path):
    root = Path(shutil.copytree(DATA / "ds004408", tmp_path / "ds004408"))
    dl.check_version(root, "ds004408")  # DOI …v1.0.8
    desc = json.loads((root / "dataset_description.json").read_text())
    desc["DatasetDOI"] = "doi:10.18112/openneuro.ds004408.v1.0.5"
    (root / "dataset_description.json").write_text(json.dumps(desc))
    with pytest.raises(
        DatasetError, match=r"dataset_description\.json: version .*v1\.0\.5 is not the pinned"
    ):
        dl.check_version(root, "ds004408")
    dl.check_version(DATA / "nm000180", "alice")


def test_cli_dry_run(tmp_path, capsys):
    assert dl.main(["ds004408", "--dest", str(tmp_path / "ds"), "--dry-run", "--subjects", "001"]) == 0
    out = capsys.readouterr().out
    assert "'tag': '1.0.8'" in out and "'include': ['stimuli', 'sub-001']" in out
    assert dl.main(["alice", "--dest", str(tmp_path / "nm"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"checkout --quiet --detach {NM_COMMIT}" in out
    res = subprocess.run(
        [str(Path(dl.sys.executable)), "-m", "hearlike.datasets.download", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "{alice,ds004408}" in res.stdout and "--dest" in res.stdout


def test_annex_pointer_detection(tmp_path):
    pointer = tmp_path / "x.vhdr"
    pointer.write_text("/annex/objects/SHA256E-s1728--b40b.vhdr\n")
    assert dl.is_annex_pointer(pointer) and not dl.content_present(pointer)
    real = tmp_path / "y.vhdr"
    real.write_text("Brain Vision Data Exchange Header File Version 1.0\n")
    assert not dl.is_annex_pointer(real) and dl.content_present(real)
    with pytest.raises(
        DatasetError, match=r"x\.vhdr: BrainVision header is a git-annex pointer .*datalad get"
    ):
        dl.require_content(pointer, what="BrainVision header", fix="download it")


# ------------------------------------------------------------------------------------------------
# the workflow's fetch_dataset step


def test_fetch_step_names_the_missing_dataset_and_the_fix(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset_description\.json: not found.*download ds004408 --dest"):
        dl.fetch_step(dataset="ds004408", bids_root=tmp_path / "absent", method="none", subjects="all",
                      out=tmp_path / "rec.tsv")
    assert not (tmp_path / "rec.tsv").exists()


def test_fetch_step_downloads_absent_data_with_the_configured_method(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(dl, "download", lambda dataset, **kw: calls.append((dataset, kw)) or kw["dest"])
    with pytest.raises(DatasetError, match=r"dataset_description\.json: missing"):  # the fake fetched nothing
        dl.fetch_step(dataset="alice", bids_root=tmp_path / "nm", method="datalad", subjects=["001", "sub-026"],
                      out=tmp_path / "rec.tsv")
    assert calls[0][0] == "alice" and calls[0][1]["method"] == "datalad"
    assert calls[0][1]["subjects"] == ["001", "026"]


def test_fetch_step_writes_then_verifies_the_manifest(tmp_path):
    root = tmp_path / "ds004408"
    shutil.copytree(DATA / "ds004408", root)
    out = tmp_path / "results" / "checksums.tsv"
    first = dl.fetch_step(dataset="ds004408", bids_root=root, method="none", subjects="all", out=out)
    assert (root / dl.CHECKSUM_FILE).exists() and out.exists()
    assert "participants.tsv" in set(first["relpath"])
    again = dl.fetch_step(dataset="ds004408", bids_root=root, method="none", subjects="all", out=out)
    pd.testing.assert_frame_equal(first, again)
    (root / "participants.tsv").write_text("participant_id\nsub-999\n")
    with pytest.raises(DatasetError, match=r"changed: participants\.tsv"):
        dl.fetch_step(dataset="ds004408", bids_root=root, method="none", subjects="all", out=out)


def test_fetch_step_refuses_another_version(tmp_path):
    root = tmp_path / "ds004408"
    shutil.copytree(DATA / "ds004408", root)
    desc = json.loads((root / "dataset_description.json").read_text(encoding="utf-8-sig"))
    desc.pop("DatasetDOI", None)
    desc["Version"] = "1.0.5"
    (root / "dataset_description.json").write_text(json.dumps(desc))
    with pytest.raises(DatasetError, match=r"not the pinned ds004408 1\.0\.8"):
        dl.fetch_step(dataset="ds004408", bids_root=root, method="none", subjects="all", out=tmp_path / "r.tsv")
