from pathlib import Path

from hearlike.aggregate import window_profile
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "aggregate_windows"):
    window_profile(tables=[Path(p) for p in snakemake.input], statistics=snakemake.params.statistics,
                   seed=snakemake.params.seed, out_profile=Path(snakemake.output.profile),
                   out_topography=Path(snakemake.output.topography),
                   out_contrast=Path(snakemake.output.contrast), erp=snakemake.params.erp)
