from pathlib import Path

from hearlike.datasets import make_adapter
from hearlike.demo.eeg import write_demo_bids
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "demo_bids"):
    ds = snakemake.config["datasets"][snakemake.wildcards.ds]
    demo = snakemake.params.demo
    write_demo_bids(adapter=make_adapter(ds), sentences_tsv=Path(snakemake.input.sentences),
                    planted_layer_file=Path(snakemake.input.planted) / f"{demo['planted_layer']}.safetensors",
                    demo=demo, seed=snakemake.params.seed, out_root=Path(snakemake.output[0]))
