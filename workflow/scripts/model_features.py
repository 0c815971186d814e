from pathlib import Path

from hearlike.features import model_features
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "model_features"):
    model_features(activations_dir=Path(snakemake.input.activations), out=Path(snakemake.output[0]),
                   n_components=snakemake.params.n_components)
