from pathlib import Path

from hearlike.aggregate import rank_models
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "rank_models"):
    rank_models(profile=Path(snakemake.input.profile), subjects=Path(snakemake.input.subjects),
                n_bootstrap=snakemake.params.n_bootstrap, n_signflip=snakemake.params.n_signflip,
                seed=snakemake.params.seed,
                out_ranking=Path(snakemake.output.ranking), out_agreement=Path(snakemake.output.agreement))
