rule extract_activations:
    """Per-layer hidden states of one model for every sentence (GPU job on clusters)."""
    input:
        model=model_input,
        audio="results/{ds}/sentences/audio.npz",
        registry=config["model_registry"],
    output:
        directory("results/{ds}/activations/{model}"),
    params:
        extraction=config["extraction"],
    resources:
        gpu=extraction_gpus,
        mem_mb=extraction_mem_mb,
        runtime=extraction_runtime,
        batch_size=extraction_batch_size,
    retries: 2
    conda:
        model_env
    log:
        "results/logs/extract_activations/{ds}/{model}.log",
    benchmark:
        "results/benchmarks/extract_activations/{ds}/{model}.tsv"
    script:
        "../scripts/extract_activations.py"


rule model_features:
    """PCA-k, z-scored features per (layer, sentence)."""
    input:
        activations="results/{ds}/activations/{model}",
        code=package_code("features.py"),
    output:
        "results/{ds}/features/{model}.npz",
    params:
        n_components=config["features"]["model_pca_components"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/model_features/{ds}/{model}.log",
    script:
        "../scripts/model_features.py"
