rule sentences:
    """Sentence table, word table and 16 kHz sentence clips from the dataset's word timings."""
    input:
        stimuli=word_table_input,
    output:
        sentences="results/{ds}/sentences/sentences.tsv",
        words="results/{ds}/sentences/words.tsv",
        audio="results/{ds}/sentences/audio.npz",
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/sentences/{ds}.log",
    script:
        "../scripts/sentences.py"
