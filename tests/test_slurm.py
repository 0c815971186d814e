"""The demo study through a real SLURM cluster gives the same result tables as a local run.

Runs the workflow twice in temporary copies of the repository -- once locally (``snakemake --cores 2``)
and once through ``snakemake --profile profiles/slurm --profile profiles/slurm-ci`` -- and requires
``results/demo/tables/*.tsv`` to be byte-identical. The second profile is the CI override of the
real-cluster profile (partition ``debug``, account ``ci``, 2 cores, fast polling); it is layered after
``profiles/slurm`` so every other setting (executor, groups, retries, ...) is the one real clusters get.

The cluster is the single-node SLURM of ``ci/slurm.sh up`` (``.ci/run`` starts it around ``make test``).

When it runs:
* ``HEARLIKE_SLURM=1`` (exported by ``.ci/run`` after a successful ``ci/slurm.sh up``): always; a broken
  cluster then fails the test instead of skipping it.
* ``HEARLIKE_SLURM=0``: skipped.
* unset: only if ``sinfo`` answers and shows the partitions ``debug`` and ``gpu`` of ``ci/slurm.sh``;
  otherwise skipped, with the reason in pytest's summary.

Without slurmdbd (``WITH_SLURMDBD=0 ci/slurm.sh up``, ``sacct`` fails) the run adds
``--slurm-status-command squeue``; with it, the plugin's default ``sacct`` path is the one exercised.

The local run is the session's ``study`` fixture (tests/conftest.py: the full demo run that the other
workflow tests share) when there is one, else this module runs it. ``HEARLIKE_SLURM_TIMEOUT`` (seconds, default 3600) bounds the SLURM run; it is
stopped with SIGINT (so Snakemake cancels its SLURM jobs) and SIGKILL 60 s later.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TABLES = Path("results") / "demo" / "tables"
CI_PARTITIONS = {"debug", "gpu"}
SLURM_PROFILES = ["--profile", "profiles/slurm", "--profile", "profiles/slurm-ci"]

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def slurm_skip_reason() -> str | None:
    """None when the test should run, else why not."""
    flag = os.environ.get("HEARLIKE_SLURM", "")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[workflow]')"
    if flag == "1":
        return None
    if flag == "0":
        return "HEARLIKE_SLURM=0 (no cluster: `ci/slurm.sh up` failed or could not run here)"
    if shutil.which("sinfo") is None:
        return "no SLURM: `sinfo` not found (start one with `sudo ci/slurm.sh up`, then set HEARLIKE_SLURM=1)"
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "no SLURM: `sinfo` did not answer within 20 s"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"no SLURM: `sinfo` failed ({last}); start one with `sudo ci/slurm.sh up`"
    partitions = set(proc.stdout.split())
    if not CI_PARTITIONS <= partitions:
        return (
            f"this SLURM has partitions {sorted(partitions)}, not the {sorted(CI_PARTITIONS)} of ci/slurm.sh "
            "that profiles/slurm-ci expects (set HEARLIKE_SLURM=1 to run anyway)"
        )
    return None


def status_command_args() -> list[str]:
    """The plugin polls with `sacct`; where accounting is off that never succeeds, so use squeue there."""
    try:
        proc = subprocess.run(
            ["sacct", "--noheader", "-X", "--starttime", "now-1minutes"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ["--slurm-status-command", "squeue"]
    return [] if proc.returncode == 0 else ["--slurm-status-command", "squeue"]


def copy_workflow(dest: Path) -> Path:
    """A runnable copy of the study (the package itself is imported from the installed environment)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("workflow", "resources", "profiles", "envs"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def tail(text: str, n: int = 4000) -> str:
    return text[-n:]


def slurm_job_logs(workdir: Path, n: int = 3) -> str:
    """The last lines of the newest SLURM job logs Snakemake kept (it keeps those of failed jobs)."""
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
    return "\n".join(
        f"--- {p.relative_to(workdir)}\n{tail(p.read_text(errors='replace'), 1500)}" for p in logs[-n:]
    )


def run_snakemake(
    workdir: Path, args: list[str], timeout_s: int | None = None
) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, *args]
    if timeout_s is not None:
        # Snakemake needs SIGINT to cancel its cluster jobs; SIGKILL if it lingers.
        cmd = ["timeout", "-s", "INT", "-k", "60", str(timeout_s), *cmd]
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=None if timeout_s is None else timeout_s + 120,
    )
    if proc.returncode != 0:
        why = "timed out" if proc.returncode in (124, 137) else f"exit {proc.returncode}"
        raise AssertionError(
            f"snakemake {' '.join(args)} in {workdir}: {why}\n--- stdout\n{tail(proc.stdout)}\n"
            f"--- stderr\n{tail(proc.stderr, 8000)}\n{slurm_job_logs(workdir)}"
        )
    return proc


@pytest.fixture(scope="module")
def slurm_ready() -> None:
    reason = slurm_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def local_run(slurm_ready, request, tmp_path_factory) -> Path:
    """Working directory of a finished local demo run: the session's if a conftest offers one."""
    try:
        return Path(request.getfixturevalue("study"))
    except pytest.FixtureLookupError:
        work = copy_workflow(tmp_path_factory.mktemp("local"))
        run_snakemake(work, ["--cores", "2"])
        return work


@pytest.fixture(scope="module")
def slurm_run(slurm_ready, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    work = copy_workflow(tmp_path_factory.mktemp("slurm"))
    limit = int(os.environ.get("HEARLIKE_SLURM_TIMEOUT", "3600"))
    return work, run_snakemake(work, [*SLURM_PROFILES, *status_command_args()], timeout_s=limit)


def test_slurm_run_used_the_cluster(slurm_run):
    _work, proc = slurm_run
    log = proc.stdout + proc.stderr
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    assert submitted, f"no job went through sbatch:\n{tail(log)}"
    assert done, f"the SLURM run did not report completion:\n{tail(log)}"
    # the profile's groups (align/metric/windows -> 'metrics') bundle many jobs into few submissions
    group_submissions = re.findall(r"slurm_logs/group_metrics\S*/\d+\.log", log)
    assert group_submissions, f"no 'metrics' group job was submitted:\n{tail(log)}"
    n_steps = int(done[-1][1])
    assert len(submitted) < n_steps, f"{len(submitted)} submissions for {n_steps} steps: no job bundling"


def test_slurm_tables_identical_to_local(local_run, slurm_run):
    slurm_work, _ = slurm_run
    local_tables = {p.name: p for p in sorted((local_run / TABLES).glob("*.tsv"))}
    slurm_tables = {p.name: p for p in sorted((slurm_work / TABLES).glob("*.tsv"))}
    assert local_tables, f"the local run wrote no tables under {local_run / TABLES}"
    assert sorted(slurm_tables) == sorted(local_tables), "different sets of result tables"
    differing = []
    for name, local_path in local_tables.items():
        a, b = local_path.read_bytes(), slurm_tables[name].read_bytes()
        if a != b:
            diff = difflib.unified_diff(
                a.decode(errors="replace").splitlines(),
                b.decode(errors="replace").splitlines(),
                f"local/{name}",
                f"slurm/{name}",
                n=0,
                lineterm="",
            )
            differing.append("\n".join(list(diff)[:12]))
    assert not differing, "tables differ between the local and the SLURM run:\n" + "\n".join(differing)
