from pathlib import Path

from hearlike.align import align_subject
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "align"):
    align_subject(segments=Path(snakemake.input.segments), features=Path(snakemake.input.features),
                  out=Path(snakemake.output[0]), lags_ms=list(snakemake.params.lags_ms))
