# Shared configuration, validation and input functions. Rules contain no lambdas: every input,
# params and resources callable is a named function here.
import functools
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "../schemas/config.schema.yaml")


def _canonical(obj):
    """Mappings with sorted keys (lists keep their order): params then compare equal whatever the key
    order of the YAML a user edits or passes with --configfile, so only real changes trigger reruns."""
    if isinstance(obj, dict):
        return {k: _canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    return obj


_canonical_config = _canonical(dict(config))
config.clear()
config.update(_canonical_config)


report: "../report/workflow.rst"


wildcard_constraints:
    ds=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    metric=r"[a-z0-9_]+",
    sub=r"[A-Za-z0-9]+",


import hearlike

PKG = Path(hearlike.__file__).parent
TABLES = ["layer_profile", "lag_profile", "window_contrast", "window_profile", "topography", "model_ranking", "metric_agreement",
          "prosody_groups", "affective_dissociation"]
FIGURES = ["layer_profiles", "ranking_heatmap", "best_layer_bars", "window_timecourse", "topomaps",
           "prosody_groups", "tnc", "null_diagnostics", "rdm_pair", "lag_profile"]


def check_config_references():
    """Cross-checks the schema cannot express; errors name the config key to fix."""
    from hearlike.metrics import METRICS
    from hearlike.models.registry import load_registry

    for ds in config["run"]:
        if ds not in config["datasets"]:
            raise ValueError(f"config.yaml: run lists {ds!r}, which is not a key of datasets")
    registry = load_registry(Path(config["model_registry"]))
    for m in config["models"]:
        if m not in registry:
            raise ValueError(f"config.yaml: models lists {m!r}, which is not in {config['model_registry']}")
    for key in ("set", "topography"):
        for name in config["metrics"][key]:
            if name not in METRICS:
                raise ValueError(f"config.yaml: metrics.{key} lists {name!r}; known metrics: {sorted(METRICS)}")
    for name in config["windows"]["metrics"]:
        if name not in config["metrics"]["set"]:
            raise ValueError(f"config.yaml: windows.metrics lists {name!r}, which is not in metrics.set")
    return registry


REGISTRY = check_config_references()


@functools.cache
def adapter(ds):
    from hearlike.datasets import make_adapter

    return make_adapter(config["datasets"][ds])


def dataset_settings(ds):
    return config["datasets"][ds]


@functools.cache
def _subjects(ds):
    if not is_demo(ds):
        # a real dataset may still have to be fetched: its subjects are known once the checkpoint has run
        checkpoints.fetch_dataset.get(ds=ds)
    return tuple(adapter(ds).subjects())


def subjects(ds):
    """The dataset's analysed subjects, read from disk once per Snakemake invocation.

    Cached because the input functions ask for them once per dependent job (hundreds of calls at paper
    scale) and the real adapters re-read participants.tsv / datasets.mat each time; a fresh list is
    returned so a caller cannot change the cached one.
    """
    return list(_subjects(ds))


def is_demo(ds):
    return config["datasets"][ds]["adapter"] == "demo"


def model_path(model):
    return f"{config['model_dir']}/{model}"


def layer_names(model):
    from hearlike.models.registry import layer_names as names

    return names(REGISTRY[model])


def all_outputs(wildcards):
    out = []
    for ds in config["run"]:
        out += expand("results/{ds}/tables/{table}.tsv", ds=ds, table=TABLES)
        out += expand("results/{ds}/figures/{figure}.png", ds=ds, figure=FIGURES)
        out.append(f"results/{ds}/provenance.json")
    return out


# --- input functions -------------------------------------------------------------------------------


def bids_input(wildcards):
    """The demo's BIDS tree is made by a rule; a real dataset's is fetched and verified by fetch_dataset."""
    if is_demo(wildcards.ds):
        return [dataset_settings(wildcards.ds)["bids_root"]]
    return [f"results/{wildcards.ds}/download/checksums.tsv"]


def word_table_input(wildcards):
    """Stimuli and word timings: the demo's are in resources/; a real dataset's come with its download, plus
    ds004408's reviewed sentence tables when options.sentence_dir is set."""
    settings = dataset_settings(wildcards.ds)
    if is_demo(wildcards.ds):
        return [str(Path(settings["stimuli_dir"]))]
    out = [f"results/{wildcards.ds}/download/checksums.tsv"]
    sentence_dir = (settings.get("options") or {}).get("sentence_dir")
    if settings["adapter"] == "ds004408" and sentence_dir:
        out += [f"{sentence_dir}/sentences_run{run}.tsv" for run in ds004408_runs(wildcards.ds)]
    return out


def ds004408_runs(ds):
    from hearlike.datasets.ds004408 import run_labels

    return run_labels((dataset_settings(ds).get("options") or {}).get("runs"))


def dataset_adapter_name(wildcards):
    return dataset_settings(wildcards.ds)["adapter"]


def dataset_bids_root(wildcards):
    return dataset_settings(wildcards.ds)["bids_root"]


def dataset_download_method(wildcards):
    return dataset_settings(wildcards.ds).get("download", "none")


def dataset_subject_setting(wildcards):
    return dataset_settings(wildcards.ds)["subjects"]


def sentence_table_sources(wildcards):
    """The fetched dataset (whose stimuli/ holds the run's TextGrid) and, when configured, the run's text."""
    settings = dataset_settings(wildcards.ds)
    if settings["adapter"] != "ds004408":
        raise ValueError(f"sentence tables are made for ds004408-like datasets only, not {wildcards.ds!r}")
    out = {"fetched": f"results/{wildcards.ds}/download/checksums.tsv"}
    if settings.get("sentence_text_dir"):
        out["text"] = str(Path(settings["sentence_text_dir"]) / f"run{wildcards.run}.txt")
    return out


def sentence_table_textgrid(wildcards):
    from hearlike.datasets.ds004408 import textgrid_for_run

    return str(Path(dataset_settings(wildcards.ds)["stimuli_dir"]) / textgrid_for_run(wildcards.run))


def model_input(wildcards):
    """The model snapshot; real models must have been downloaded (the message says how)."""
    path = model_path(wildcards.model)
    entry = REGISTRY[wildcards.model]
    if entry.builder is None and not Path(path, "config.json").exists():
        raise ValueError(
            f"model {wildcards.model!r} is not available locally at {path}. Download it once on a machine with "
            f"internet access: python -m hearlike.models.download {wildcards.model} --dest {path}  "
            f"(pinned revision from {config['model_registry']})"
        )
    return path


def planted_layer_file(wildcards):
    demo = dataset_settings(wildcards.ds)["demo"]
    return f"results/{wildcards.ds}/activations/{demo['planted_model']}"


def metric_code(wildcards):
    """The source files a metric depends on: editing one reruns only the jobs of the metrics that use it."""
    from hearlike.metrics import module_paths

    # every metric's table and null draws go through these
    shared = [PKG / "analysis.py", PKG / "metrics" / "reindexed.py", PKG / "nulls.py", PKG / "align.py",
              PKG / "stats.py", PKG / "seeding.py", PKG / "io.py"]
    return [str(p) for p in [*module_paths(wildcards.metric), *shared]]


def metric_code_digest(wildcards):
    """SHA-256 of the metric's source files: a params value, so an edit reruns the metric's jobs whatever
    the files' timestamps (Snakemake's mtime trigger does not fire for source files outside the workflow)."""
    import hashlib

    h = hashlib.sha256()
    for path in metric_code(wildcards):
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def metric_settings(wildcards):
    return config["metrics"]["settings"].get(wildcards.metric, {})


def metric_tables(wildcards):
    return expand("results/{ds}/metrics/{model}/{metric}.tsv", ds=wildcards.ds, model=config["models"],
                  metric=config["metrics"]["set"])


def electrode_tables(wildcards):
    return expand("results/{ds}/metrics/{model}/{metric}_electrodes.tsv", ds=wildcards.ds, model=config["models"],
                  metric=config["metrics"]["set"])


def aligned_of_model(wildcards):
    return expand("results/{ds}/aligned/{model}/sub-{sub}.npz", ds=wildcards.ds, model=wildcards.model,
                  sub=subjects(wildcards.ds))


def window_tables(wildcards):
    return expand("results/{ds}/windows/{model}/sub-{sub}.tsv", ds=wildcards.ds, model=config["models"],
                  sub=subjects(wildcards.ds))


def feature_bundles(wildcards):
    return expand("results/{ds}/features/{model}.npz", ds=wildcards.ds, model=config["models"])


def segment_bundles(wildcards):
    return expand("results/{ds}/eeg/sub-{sub}_segments.npz", ds=wildcards.ds, sub=subjects(wildcards.ds))


def aligned_bundles(wildcards):
    return expand("results/{ds}/aligned/{model}/sub-{sub}.npz", ds=wildcards.ds, model=config["models"],
                  sub=subjects(wildcards.ds))


# --- resources ----------------------------------------------------------------------------------------


def attempt_scaled(base):
    """A resource callable growing with the attempt number (a retry after a timeout or OOM asks for more)."""

    def scaled(wildcards, attempt):
        return base * attempt

    return scaled



def extraction_gpus(wildcards):
    return REGISTRY[wildcards.model].resources.gpu


def extraction_mem_mb(wildcards, attempt):
    return REGISTRY[wildcards.model].resources.mem_mb * attempt


def extraction_runtime(wildcards, attempt):
    return REGISTRY[wildcards.model].resources.runtime * attempt


def extraction_batch_size(wildcards, attempt):
    """Halve the batch on each retry (a CUDA out-of-memory failure is the usual reason to retry)."""
    return max(1, config["extraction"]["batch_size"] // (2 ** (attempt - 1)))


def demo_params(wildcards):
    return dataset_settings(wildcards.ds)["demo"]


def metric_eeg_components(wildcards):
    """gcmi sees the EEG reduced to its leading PCs (features.eeg_components_gcmi); other metrics all channels."""
    return config["features"]["eeg_components_gcmi"] if wildcards.metric == "gcmi" else None


def per_electrode(wildcards):
    """Whether this metric is also computed per electrode (a per-metric flag, so the list's other entries don't rerun it)."""
    return wildcards.metric in config["metrics"]["topography"]


def package_code(*modules):
    """Package modules a rule's numbers come from, as inputs: editing one reruns that rule's jobs
    (Snakemake's own code trigger only sees the rule's script, not the package it calls)."""
    return [str(PKG / m) for m in modules]


def window_code(wildcards):
    """The windows module: window metrics are computed by its own RDM code."""
    return [str(PKG / "windows.py"), str(PKG / "analysis.py")]


def window_metric_settings(wildcards):
    return {m: config["metrics"]["settings"].get(m, {}) for m in config["windows"]["metrics"]}


def activations_of(model):
    return f"results/{{ds}}/activations/{model}"


def all_activations(wildcards):
    return expand("results/{ds}/activations/{model}", ds=wildcards.ds, model=config["models"])


def metric_families(wildcards):
    from hearlike.metrics import METRICS

    return {m: METRICS[m].family for m in config["metrics"]["set"]}


def montage_of(wildcards):
    return dataset_settings(wildcards.ds)["montage"]


def model_env(wildcards):
    """The conda environment of a model's extraction: envs/hearlike.yaml or its side env envs/<env>.yaml."""
    env = REGISTRY[wildcards.model].env
    return "../../envs/hearlike.yaml" if env == "main" else f"../../envs/{env}.yaml"
