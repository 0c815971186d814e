from pathlib import Path

from hearlike.logutil import step_log
from hearlike.provenance import write_provenance

with step_log(snakemake.log[0], "provenance"):
    write_provenance(config=snakemake.params.config, dataset=snakemake.wildcards.ds,
                     activations=[Path(p) for p in snakemake.input.activations], out=Path(snakemake.output[0]))
