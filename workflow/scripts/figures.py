from pathlib import Path

from hearlike.figure_step import make_figures
from hearlike.logutil import step_log

with step_log(snakemake.log[0], "figures"):
    make_figures(tables_dir=Path(snakemake.output[0]).parents[1] / "tables", inputs=dict(snakemake.input),
                 montage=snakemake.params.montage, dpi=snakemake.params.figures["dpi"],
                 depth_axis=snakemake.params.figures["depth_axis"],
                 outputs={k: Path(v) for k, v in snakemake.output.items()})
