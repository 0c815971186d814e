rule figures:
    """All figures of one dataset, each with a report caption (workflow/report/*.rst)."""
    input:
        tables=expand("results/{{ds}}/tables/{table}.tsv", table=TABLES),
        prosody_subjects="results/{ds}/tables/prosody_subject_values.tsv",
        tnc="results/{ds}/prosody/tnc.tsv",
        tnc_null="results/{ds}/prosody/tnc_null.tsv",
        values=metric_tables,
        features=feature_bundles,
        aligned=aligned_bundles,
        code=package_code("figures.py", "figure_step.py"),
    output:
        **{
            name: report(
                f"results/{{ds}}/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="{ds}",
            )
            for name in FIGURES
        },
    params:
        figures=config["figures"],
        montage=montage_of,
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/figures/{ds}.log",
    script:
        "../scripts/figures.py"
