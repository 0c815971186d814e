from pathlib import Path

from hearlike.logutil import step_log
from hearlike.prosody_step import sentence_prosody_table

with step_log(snakemake.log[0], "prosody"):
    p = snakemake.params.prosody
    sentence_prosody_table(audio=Path(snakemake.input.audio), words=Path(snakemake.input.words),
                           f0_floor=p["f0_floor"], f0_ceiling=p["f0_ceiling"], egemaps=p["egemaps"],
                           label_rule=p["label_rule"], label_threshold=p["label_threshold"],
                           out=Path(snakemake.output[0]))
