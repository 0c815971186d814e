rule metric:
    """One similarity metric for one model, every subject × sentence × layer, per electrode, with nulls."""
    input:
        aligned=aligned_of_model,
        features="results/{ds}/features/{model}.npz",
        code=metric_code,
    output:
        values="results/{ds}/metrics/{model}/{metric}.tsv",
        electrodes="results/{ds}/metrics/{model}/{metric}_electrodes.tsv",
    params:
        settings=metric_settings,
        code_sha256=metric_code_digest,
        nulls=config["nulls"],
        per_electrode=per_electrode,
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/metric/{ds}/{model}/{metric}.log",
    benchmark:
        "results/benchmarks/metric/{ds}/{model}/{metric}.tsv"
    resources:
        runtime=attempt_scaled(240),
        mem_mb=attempt_scaled(4000),
    group:
        "metrics"
    script:
        "../scripts/metric.py"
