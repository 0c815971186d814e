from pathlib import Path

from hearlike.datasets import make_adapter
from hearlike.logutil import step_log
from hearlike.sentences import write_sentences

with step_log(snakemake.log[0], "sentences"):
    write_sentences(adapter=make_adapter(snakemake.config["datasets"][snakemake.wildcards.ds]),
                    out_sentences=Path(snakemake.output.sentences), out_words=Path(snakemake.output.words),
                    out_audio=Path(snakemake.output.audio))
