from pathlib import Path

from hearlike.logutil import step_log
from hearlike.models.tiny import build_demo_model

with step_log(snakemake.log[0], "build_demo_model"):
    build_demo_model(key=snakemake.wildcards.model, registry=Path(snakemake.input.registry),
                     out_dir=Path(snakemake.output[0]))
