rule metric:
    """One similarity metric for one model and one subject: every sentence × layer, per electrode, and nulls."""
    input:
        aligned="results/{ds}/aligned/{model}/sub-{sub}.npz",
        features="results/{ds}/features/{model}.npz",
        code=metric_code,
    output:
        values="results/{ds}/metrics/{model}/{metric}/sub-{sub}.tsv",
        electrodes="results/{ds}/metrics/{model}/{metric}/sub-{sub}_electrodes.tsv",
    params:
        settings=metric_settings,
        nulls=config["nulls"],
        per_electrode=per_electrode,
        seed=config["seed"],
    log:
        "results/logs/metric/{ds}/{model}/{metric}/sub-{sub}.log",
    benchmark:
        "results/benchmarks/metric/{ds}/{model}/{metric}/sub-{sub}.tsv"
    group:
        "metrics"
    script:
        "../scripts/metric.py"
