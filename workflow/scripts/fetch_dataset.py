from hearlike.datasets.download import fetch_step
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "fetch_dataset"):
    fetch_step(dataset=snakemake.params.dataset, bids_root=snakemake.params.bids_root,
               method=snakemake.params.method, subjects=snakemake.params.subjects, out=snakemake.output[0])
