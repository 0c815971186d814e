from pathlib import Path

from hearlike.datasets import make_adapter
from hearlike.eeg import segment_subject
from hearlike.io import read_tsv
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "segment"):
    segment_subject(adapter=make_adapter(snakemake.config["datasets"][snakemake.wildcards.ds]),
                    subject=snakemake.wildcards.sub, preproc_dir=Path(snakemake.input.preproc),
                    sentences=read_tsv(snakemake.input.sentences), out=Path(snakemake.output[0]))
