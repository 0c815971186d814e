rule aggregate:
    """Subject-level values (Fisher z where applicable), bootstrap CIs, sign-flip tests vs the nulls, BH-FDR."""
    input:
        values=metric_tables,
        electrodes=electrode_tables,
        features=feature_bundles,
        code=package_code("aggregate.py", "stats.py", "seeding.py", "io.py"),
    output:
        profile="results/{ds}/tables/layer_profile.tsv",
        subjects="results/{ds}/tables/subject_layer_values.tsv",
        electrodes="results/{ds}/tables/electrode_profile.tsv",
        lags="results/{ds}/tables/lag_profile.tsv",
    params:
        statistics=config["statistics"],
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/aggregate/{ds}.log",
    script:
        "../scripts/aggregate.py"


rule rank_models:
    """Model ranks per metric (best layer, mean over layers) above each model's own null and raw, agreement between metrics, Kendall's W, stability."""
    input:
        profile="results/{ds}/tables/layer_profile.tsv",
        subjects="results/{ds}/tables/subject_layer_values.tsv",
        code=package_code("ranking.py", "aggregate.py", "stats.py"),
    output:
        ranking="results/{ds}/tables/model_ranking.tsv",
        agreement="results/{ds}/tables/metric_agreement.tsv",
    params:
        n_bootstrap=config["statistics"]["n_bootstrap"],
        n_signflip=config["statistics"]["n_signflip"],
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/rank_models/{ds}.log",
    script:
        "../scripts/rank_models.py"


rule provenance:
    """What produced these results: code commit, config hash, dataset, model revisions, packages, seeds."""
    input:
        tables=expand("results/{{ds}}/tables/{table}.tsv", table=TABLES),
        activations=all_activations,
    output:
        "results/{ds}/provenance.json",
    params:
        config=config,
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/provenance/{ds}.log",
    script:
        "../scripts/provenance.py"
