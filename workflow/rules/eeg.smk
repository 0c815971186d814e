rule ingest:
    """Read every recording with mne-bids read_raw_bids and list it (fails early, naming bad files)."""
    input:
        bids=bids_input,
    output:
        "results/{ds}/ingest/recordings.tsv",
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/ingest/{ds}.log",
    script:
        "../scripts/ingest.py"


rule preprocess:
    """Filter, notch, bad channels (dataset ∪ detected), spline interpolation, average reference → BIDS derivatives."""
    input:
        bids=bids_input,
        inventory="results/{ds}/ingest/recordings.tsv",
        code=package_code("eeg.py"),
    output:
        directory("results/{ds}/derivatives/hearlike/sub-{sub}"),
    params:
        preprocessing=config["preprocessing"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/preprocess/{ds}/sub-{sub}.log",
    benchmark:
        "results/benchmarks/preprocess/{ds}/sub-{sub}.tsv"
    script:
        "../scripts/preprocess.py"


rule segment:
    """Cut each sentence's EEG span (equal in duration to its audio clip, checked)."""
    input:
        preproc="results/{ds}/derivatives/hearlike/sub-{sub}",
        sentences="results/{ds}/sentences/sentences.tsv",
    output:
        "results/{ds}/eeg/sub-{sub}_segments.npz",
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/segment/{ds}/sub-{sub}.log",
    script:
        "../scripts/segment.py"
