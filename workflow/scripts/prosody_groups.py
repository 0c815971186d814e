from pathlib import Path

from hearlike.logutil import step_log
from hearlike.prosody_step import prosody_groups

with step_log(snakemake.log[0], "prosody_groups"):
    prosody_groups(values=[Path(p) for p in snakemake.input.values], labels=Path(snakemake.input.labels),
                   sentences=Path(snakemake.input.sentences), families=snakemake.params.families,
                   statistics=snakemake.params.statistics, seed=snakemake.params.seed,
                   out_groups=Path(snakemake.output.groups), out_dissociation=Path(snakemake.output.dissociation),
                   out_subjects=Path(snakemake.output.per_subject))
