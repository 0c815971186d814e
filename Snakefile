# hearlike: do Audio LLMs hear like us?  See README.md and docs/architecture.md.
include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/sentences.smk"
include: "workflow/rules/eeg.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/windows.smk"
include: "workflow/rules/statistics.smk"
include: "workflow/rules/prosody.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_outputs,
