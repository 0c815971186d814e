from pathlib import Path

from hearlike.logutil import step_log
from hearlike.prosody_step import tnc_step

with step_log(snakemake.log[0], "tnc"):
    tnc_step(prosody=Path(snakemake.input.prosody), segments=[Path(p) for p in snakemake.input.segments],
             profile=Path(snakemake.input.profile), activations=[Path(p) for p in snakemake.input.activations],
             tnc=snakemake.params.tnc, seed=snakemake.params.seed, out_labels=Path(snakemake.output.labels),
             out_null=Path(snakemake.output.null))
