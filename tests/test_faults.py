"""Faults: a job killed with SIGKILL leaves no corrupt output, and the next run redoes only what it must.

Runtime (2 shared cores): ``test_write_tsv_killed_mid_write`` ~1 s; ``test_killed_run_...`` 2.5–6 minutes
(147 s measured on a quiet machine, 350 s under load) on top of the session's ``study`` fixture (12–14 min):
in a copy of the finished study, one model's metric jobs are started, Snakemake is killed after the first
finishes, and the rest rerun with the tables and figures after them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import SNAKEMAKE, planned_jobs, snakemake

pytestmark = pytest.mark.slow


def _processes_in(workdir: Path) -> list[int]:
    """Pids of live processes whose working directory is inside ``workdir`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd == workdir or workdir in cwd.parents):
            pids.append(int(entry.name))
    return pids


def test_write_tsv_killed_mid_write(tmp_path):
    """SIGKILL while write_tsv streams a table: the old table survives intact, never a partial one."""
    target = tmp_path / "table.tsv"
    target.write_text("a\tb\n1\t2\n")
    original = target.read_bytes()
    # a table large enough (~100 MB) that writing it takes seconds, so the kill lands inside the write
    writer = textwrap.dedent(f"""
        import numpy as np, pandas as pd
        from hearlike.io import write_tsv
        df = pd.DataFrame(np.random.default_rng(0).standard_normal((1_000_000, 6)))
        print("writing", flush=True)
        write_tsv(df, {str(target)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    tmp_files: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        tmp_files = [p for p in tmp_path.glob(".table.tsv.*.tmp") if p.stat().st_size > 0]
        if tmp_files:
            break
        time.sleep(0.01)
    assert tmp_files and proc.poll() is None, "the writer finished before it could be killed mid-write"
    proc.kill()
    proc.wait()
    assert target.read_bytes() == original  # the destination is only ever replaced whole (rename)
    # the interrupted temp file stays behind: hidden, named *.tmp, matched by no rule's output pattern
    assert all(p.name.startswith(".") and p.suffix == ".tmp" for p in tmp_path.iterdir() if p != target)


def _jobs(log_text: str) -> dict[int, tuple[str, list[str]]]:
    """jobid → (rule, outputs) from the job blocks Snakemake prints (runs and dry runs alike)."""
    jobs, rule, outputs = {}, None, []
    for line in log_text.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            rule, outputs = m.group(1), []
        elif rule and (m := re.match(r"^output: (.+)$", line.strip())):
            outputs = [o.strip() for o in m.group(1).split(",")]
        elif rule and (m := re.match(r"^jobid: (\d+)$", line.strip())):
            jobs[int(m.group(1))] = (rule, outputs)
    return jobs


def _finished_metric_outputs(log_text: str) -> set[str]:
    """Outputs of the metric jobs Snakemake reported finished (it prints that after recording their metadata)."""
    jobs = _jobs(log_text)
    done = {int(m) for m in re.findall(r"Finished jobid: (\d+) \(Rule: metric\)", log_text)}
    return {o for j in done for o in jobs[j][1]}


def _fastest_model(study: Path) -> str:
    """The model whose metric jobs took least time in the study (the shortest rerun)."""
    totals: dict[str, float] = {}
    for bench in (study / "results/benchmarks/metric/demo").glob("*/*.tsv"):
        with open(bench) as fh:
            totals[bench.parent.name] = totals.get(bench.parent.name, 0.0) + float(
                next(csv.DictReader(fh, delimiter="\t"))["s"])
    assert totals, "the study wrote no metric benchmarks"
    return min(totals, key=totals.__getitem__)


def test_killed_run_redoes_only_unfinished_jobs_and_leaves_no_corrupt_output(study, tmp_path):
    """SIGKILL a run while metric jobs write: finished jobs stay done, killed ones leave nothing behind."""
    import hearlike
    from hearlike.provenance import tree_sha256

    ran = json.loads((study / "results/demo/provenance.json").read_text())["code"]["source_sha256"]
    if ran != tree_sha256(Path(hearlike.__file__).parent):
        pytest.skip("the package source was edited since the study fixture ran: its outputs are stale")
    work = tmp_path / "study"
    shutil.copytree(study, work, symlinks=True)  # copy2 keeps mtimes: the copy is up to date
    assert planned_jobs(work) == {}, snakemake(work, "--dry-run").stdout[-3000:]
    model = _fastest_model(study)
    metric_outputs = sorted(str(p.relative_to(study)) for p in (study / f"results/demo/metrics/{model}").glob("*.tsv"))

    # the state of a run that has yet to compute one model's metrics and everything after them: remove those
    # outputs. (Touching the metric jobs' inputs instead would not do: for inputs under 1 MB Snakemake
    # compares checksums, not mtimes; and a lone missing metric table is not remade while the tables built
    # from it are up to date.)
    forced = planned_jobs(work, "--forcerun", *metric_outputs)
    affected = {o for _, outs in _jobs(snakemake(work, "--dry-run", "--forcerun", *metric_outputs).stdout).values()
                for o in outs}
    assert set(metric_outputs) <= affected and not any(o.startswith("results/demo/aligned/") for o in affected)
    for out in affected:
        (work / out).unlink()
    plan = planned_jobs(work)
    assert plan == forced and plan["metric"] * 2 == len(metric_outputs), (plan, forced)
    assert {"align", "model_features", "extract_activations", "segment", "windows"}.isdisjoint(plan)
    stamp = time.time()

    # run it, and SIGKILL Snakemake's whole process group once a metric job has finished and another runs
    run_log = tmp_path / "killed_run.log"
    logs = work / f"results/logs/metric/demo/{model}"
    with open(run_log, "w") as out:
        proc = subprocess.Popen([*SNAKEMAKE, "--cores", "2"], cwd=work, start_new_session=True, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 1200
    finished: set[str] = set()
    running: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        finished = _finished_metric_outputs(run_log.read_text())
        running = [p for p in logs.glob("*.log")
                   if p.stat().st_mtime >= stamp and "start metric" in (t := p.read_text()) and "end metric" not in t]
        if finished and running:
            break
        time.sleep(0.05)
    assert finished and running and proc.poll() is None, "no moment with one metric job done and another running"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _finished_metric_outputs(run_log.read_text())  # a job may have finished just before the kill
    time.sleep(0.5)
    assert not _processes_in(work), "a job process survived the kill and could still write"

    # no corrupt output: every metric table of the model is absent (Snakemake removes a job's outputs when it
    # starts; they are written whole at its end) or complete, i.e. identical to the study's
    for out in metric_outputs:
        if (work / out).exists():
            assert (work / out).read_bytes() == (study / out).read_bytes(), out
    unfinished = sorted(set(metric_outputs) - finished)
    assert unfinished and finished

    # the kill leaves Snakemake's lock behind: a real run refuses until --unlock
    locked = snakemake(work, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(work, "--unlock")

    # the next run plans exactly the unfinished metric jobs and what depends on them, nothing upstream
    jobs = planned_jobs(work, "--rerun-incomplete")
    assert jobs == {**plan, "metric": len(unfinished) // 2}, (jobs, plan, finished)
    dry = snakemake(work, "--dry-run", "--rerun-incomplete").stdout
    planned = {o for rule, outs in _jobs(dry).values() if rule == "metric" for o in outs}
    assert planned == set(unfinished)

    # a writer that is not atomic would have left truncated files of the jobs that were running: Snakemake's
    # incomplete marker (set when a job starts, cleared when it is recorded finished) must still catch them
    killed = [p.stem for p in logs.glob("*.log")
              if p.stat().st_mtime >= stamp and "start metric" in (t := p.read_text()) and "end metric" not in t]
    assert killed
    truncated = [f"results/demo/metrics/{model}/{m}{suffix}.tsv" for m in killed for suffix in ("", "_electrodes")]
    for out in truncated:
        (work / out).write_bytes((study / out).read_bytes()[:100])
    refused = snakemake(work, "--dry-run", check=False)
    message = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "incomplete" in message.lower(), message[-3000:]
    assert all(out in message for out in truncated), message[-3000:]
    assert planned_jobs(work, "--rerun-incomplete") == jobs

    # rerun: everything is as before the fault, and nothing is left to do
    snakemake(work, "--rerun-incomplete")
    assert planned_jobs(work) == {}
    for out in metric_outputs:
        assert (work / out).read_bytes() == (study / out).read_bytes(), out
    for table in sorted((study / "results/demo/tables").glob("*.tsv")):
        assert (work / "results/demo/tables" / table.name).read_bytes() == table.read_bytes(), table.name
    # temp files of an interrupted atomic write would be hidden *.tmp files that no rule reads
    assert all(p.name.startswith(".") for p in (work / "results").rglob("*.tmp"))
