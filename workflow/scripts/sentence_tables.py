from pathlib import Path

from hearlike.datasets.ds004408 import write_sentence_table
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "sentence_tables"):
    write_sentence_table(textgrid=Path(snakemake.params.textgrid),
                         text=Path(snakemake.input.text) if "text" in snakemake.input.keys() else None,
                         out=Path(snakemake.output[0]))
