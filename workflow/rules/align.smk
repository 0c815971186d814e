rule align:
    """EEG averaged within each model frame (timestamp-based, each model's own frame rate)."""
    input:
        segments="results/{ds}/eeg/sub-{sub}_segments.npz",
        features="results/{ds}/features/{model}.npz",
        code=package_code("align.py"),
    output:
        "results/{ds}/aligned/{model}/sub-{sub}.npz",
    params:
        lags_ms=config["alignment"]["lags_ms"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/align/{ds}/{model}/sub-{sub}.log",
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(2000),
    group:
        "metrics"
    script:
        "../scripts/align.py"
