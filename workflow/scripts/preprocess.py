from pathlib import Path

from hearlike.datasets import make_adapter
from hearlike.eeg import preprocess_subject
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "preprocess"):
    p = snakemake.params.preprocessing
    preprocess_subject(adapter=make_adapter(snakemake.config["datasets"][snakemake.wildcards.ds]),
                       subject=snakemake.wildcards.sub, out_dir=Path(snakemake.output[0]), mode=p["mode"],
                       l_freq=p["l_freq"], h_freq=p["h_freq"], notch=p["notch"], bad_channels=p["bad_channels"],
                       interpolate=p["interpolate"], reference=p["reference"])
