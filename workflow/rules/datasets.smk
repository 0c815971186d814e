checkpoint fetch_dataset:
    """A real dataset at its pinned version under datasets.<ds>.bids_root (outside the repository): fetched when
    absent (download: openneuro | datalad), its checksum manifest verified (or written on first use), and the
    manifest copied here. A checkpoint: the subject lists that shape the DAG are read after it has run."""
    output:
        "results/{ds}/download/checksums.tsv",
    params:
        dataset=dataset_adapter_name,
        bids_root=dataset_bids_root,
        method=dataset_download_method,
        subjects=dataset_subject_setting,
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/fetch_dataset/{ds}.log",
    script:
        "../scripts/fetch_dataset.py"


rule sentence_tables:
    """ds004408's reviewable sentence boundaries, resources/{ds}/sentences_runNN.tsv, from the punctuated text in
    datasets.<ds>.sentence_text_dir (else pause-based). Used when options.sentence_dir is resources/{ds}; review
    and commit them (resources/ds004408/README.md)."""
    input:
        unpack(sentence_table_sources),
    output:
        "resources/{ds}/sentences_run{run}.tsv",
    wildcard_constraints:
        run=r"[0-9]{2}",
    params:
        textgrid=sentence_table_textgrid,
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/sentence_tables/{ds}/run{run}.log",
    script:
        "../scripts/sentence_tables.py"
