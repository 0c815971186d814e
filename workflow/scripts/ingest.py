from pathlib import Path

from hearlike.datasets import make_adapter
from hearlike.eeg import inventory
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "ingest"):
    inventory(adapter=make_adapter(snakemake.config["datasets"][snakemake.wildcards.ds]), out=Path(snakemake.output[0]))
