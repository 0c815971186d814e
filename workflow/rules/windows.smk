rule windows:
    """Time-windowed similarity (ERP windows incl. the paper's 250–500 ms, and sliding windows) per electrode,
    with its EEG-side sentence-mismatch null (windows.null_draws partner assignments, in params.windows)."""
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
    """Subject-level window profiles (value − mismatch null tested across subjects), scalp topographies, and
    the contrast of the paper's 250–500 ms window with the early ERP windows."""
    input:
        window_tables,
    output:
        profile="results/{ds}/tables/window_profile.tsv",
        topography="results/{ds}/tables/topography.tsv",
        contrast="results/{ds}/tables/window_contrast.tsv",
    params:
        statistics=config["statistics"],
        erp=config["windows"]["erp"],
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/aggregate_windows/{ds}.log",
    script:
        "../scripts/aggregate_windows.py"
