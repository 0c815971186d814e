import sys
from pathlib import Path

try:
    import hearlike  # noqa: F401
except ImportError:
    # Side environments (envs/<env>.yaml) carry only the model's own pinned stack; hearlike's extraction
    # modules need just numpy/pandas/pyyaml/jsonschema/safetensors/tqdm/torch/transformers, so they are
    # imported from this checkout instead of installing hearlike with its full (conflicting) dependency set.
    sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from hearlike.logutil import step_log
from hearlike.models.extract import extract_activations

with step_log(snakemake.log[0], "extract_activations"):
    p = snakemake.params.extraction
    extract_activations(key=snakemake.wildcards.model, registry=Path(snakemake.input.registry),
                        model_dir=Path(snakemake.input.model), audio_npz=Path(snakemake.input.audio),
                        out_dir=Path(snakemake.output[0]), device=p["device"],
                        batch_size=snakemake.resources.batch_size,
                        settings={"store_embedding_layer": p["store_embedding_layer"]})
