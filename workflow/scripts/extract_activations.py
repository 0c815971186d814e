from pathlib import Path

from hearlike.logutil import step_log
from hearlike.models.extract import extract_activations

with step_log(snakemake.log[0], "extract_activations"):
    p = snakemake.params.extraction
    extract_activations(key=snakemake.wildcards.model, registry=Path(snakemake.input.registry),
                        model_dir=Path(snakemake.input.model), audio_npz=Path(snakemake.input.audio),
                        out_dir=Path(snakemake.output[0]), device=p["device"],
                        batch_size=snakemake.resources.batch_size,
                        settings={"store_embedding_layer": p["store_embedding_layer"]})
