rule prosody:
    """Acoustic prosody per sentence (F0, intensity, rate, pitch range, spectral, eGeMAPS) and a provisional affect label."""
    input:
        audio="results/{ds}/sentences/audio.npz",
        words="results/{ds}/sentences/words.tsv",
        code=package_code("prosody.py", "affect.py", "prosody_step.py"),
    output:
        "results/{ds}/prosody/sentence_features.tsv",
    params:
        prosody=config["prosody"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/prosody/{ds}.log",
    script:
        "../scripts/prosody.py"


rule tnc:
    """Tri-modal neighbourhood consistency across acoustic, EEG and model spaces → negative-prosody labels."""
    input:
        prosody="results/{ds}/prosody/sentence_features.tsv",
        segments=segment_bundles,
        profile="results/{ds}/tables/layer_profile.tsv",
        activations=all_activations,
        code=package_code("tnc.py", "prosody_step.py"),
    output:
        labels="results/{ds}/prosody/tnc.tsv",
        null="results/{ds}/prosody/tnc_null.tsv",
    params:
        tnc=config["tnc"],
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/tnc/{ds}.log",
    script:
        "../scripts/tnc.py"


rule prosody_groups:
    """Negative vs other sentences per (model, layer, metric): group means and the paired subject-level test."""
    input:
        values=metric_tables,
        labels="results/{ds}/prosody/tnc.tsv",
        sentences="results/{ds}/sentences/sentences.tsv",
        code=package_code("prosody_step.py", "stats.py"),
    output:
        groups="results/{ds}/tables/prosody_groups.tsv",
        dissociation="results/{ds}/tables/affective_dissociation.tsv",
        per_subject="results/{ds}/tables/prosody_subject_values.tsv",
    params:
        families=metric_families,
        statistics=config["statistics"],
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/prosody_groups/{ds}.log",
    script:
        "../scripts/prosody_groups.py"
