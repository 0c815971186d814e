from pathlib import Path

from hearlike.aggregate import layer_profile
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "aggregate"):
    layer_profile(values=[Path(p) for p in snakemake.input.values],
                  electrodes=[Path(p) for p in snakemake.input.electrodes], features=[Path(p) for p in snakemake.input.features],
                  statistics=snakemake.params.statistics, seed=snakemake.params.seed,
                  out_profile=Path(snakemake.output.profile), out_subjects=Path(snakemake.output.subjects),
                  out_electrodes=Path(snakemake.output.electrodes), out_lags=Path(snakemake.output.lags))
