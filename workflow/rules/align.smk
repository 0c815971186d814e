rule align:
    """EEG averaged within each model frame (timestamp-based, each model's own frame rate)."""
    input:
        segments="results/{ds}/eeg/sub-{sub}_segments.npz",
        features="results/{ds}/features/{model}.npz",
    output:
        "results/{ds}/aligned/{model}/sub-{sub}.npz",
    params:
        lag_ms=config["alignment"]["lag_ms"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/align/{ds}/{model}/sub-{sub}.log",
    group:
        "metrics"
    script:
        "../scripts/align.py"
