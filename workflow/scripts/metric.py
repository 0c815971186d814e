from pathlib import Path

from hearlike.analysis import metric_job
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "metric"):
    w = snakemake.wildcards
    metric_job(metric=w.metric, model=w.model, aligned=[Path(p) for p in snakemake.input.aligned],
               features=Path(snakemake.input.features), settings=snakemake.params.settings,
               nulls=snakemake.params.nulls, per_electrode=snakemake.params.per_electrode,
               seed=snakemake.params.seed, out_values=Path(snakemake.output.values),
               out_electrodes=Path(snakemake.output.electrodes),
               eeg_components=snakemake.params.eeg_components)
