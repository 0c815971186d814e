rule windows:
    """Time-windowed similarity (ERP windows incl. the paper's 250–500 ms, and sliding windows) per electrode."""
    input:
        segments="results/{ds}/eeg/sub-{sub}_segments.npz",
        features="results/{ds}/features/{model}.npz",
        words="results/{ds}/sentences/words.tsv",
        sentences="results/{ds}/sentences/sentences.tsv",
        code=window_code,
    output:
        "results/{ds}/windows/{model}/sub-{sub}.tsv",
    params:
        windows=config["windows"],
        settings=window_metric_settings,
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/windows/{ds}/{model}/sub-{sub}.log",
    benchmark:
        "results/benchmarks/windows/{ds}/{model}/sub-{sub}.tsv"
    resources:
        runtime=attempt_scaled(60),
        mem_mb=attempt_scaled(4000),
    group:
        "metrics"
    script:
        "../scripts/windows.py"


rule aggregate_windows:
    """Subject-level window profiles with bootstrap CIs, and scalp topographies."""
    input:
        window_tables,
    output:
        profile="results/{ds}/tables/window_profile.tsv",
        topography="results/{ds}/tables/topography.tsv",
    params:
        statistics=config["statistics"],
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/aggregate_windows/{ds}.log",
    script:
        "../scripts/aggregate_windows.py"
