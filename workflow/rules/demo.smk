# The bundled demo: tiny random models of real architectures and a synthetic BIDS-EEG dataset with
# planted effects (README, "The demo dataset").


rule build_demo_model:
    """Build a tiny random-initialised model of a real architecture, saved with save_pretrained."""
    input:
        registry=config["model_registry"],
    output:
        directory(f"{config['model_dir']}/{{model}}"),
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/build_demo_model/{model}.log",
    wildcard_constraints:
        model=r"demo-[A-Za-z0-9_.-]+",
    script:
        "../scripts/build_demo_model.py"


rule demo_bids:
    """Simulate the demo EEG (driven by the planted model layer) and write it as BIDS with mne-bids."""
    input:
        sentences="results/{ds}/sentences/sentences.tsv",
        planted=planted_layer_file,
        stimuli=word_table_input,
        code=package_code("demo/eeg.py"),
    output:
        directory("results/{ds}/bids"),
    params:
        demo=demo_params,
        seed=config["seed"],
    conda:
        "../../envs/hearlike.yaml"
    log:
        "results/logs/demo_bids/{ds}.log",
    benchmark:
        "results/benchmarks/demo_bids/{ds}.tsv"
    script:
        "../scripts/demo_bids.py"
