from pathlib import Path

from hearlike.analysis import window_job
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "windows"):
    w = snakemake.wildcards
    window_job(model=w.model, subject=w.sub, segments=Path(snakemake.input.segments),
               features=Path(snakemake.input.features), words=Path(snakemake.input.words),
               sentences=Path(snakemake.input.sentences), windows=snakemake.params.windows,
               settings=snakemake.params.settings, seed=snakemake.params.seed,
               out=Path(snakemake.output[0]))
