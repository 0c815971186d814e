"""Download a registry model at its pinned revision (needs network and, for gated repos, a HF token).

Usage::

    python -m hearlike.models.download KEY --dest models/KEY [--registry resources/models.yaml] [--allow-unpinned]

Writes the snapshot into ``dest`` and a ``hearlike_model.json`` marker (hub id, revision, sha256 of every
file) that the offline loader checks before it allows ``trust_remote_code``. Companion repos (Ultravox's
LLM/encoder, GLM-4-Voice's tokenizer, ...) go to ``dest/companions/<owner>__<name>``; a ``loader: package``
entry's own code is cloned at its pinned ``code.commit`` into ``dest/hearlike_code``; single ``files`` (by URL)
are saved under ``dest`` after their sha256 is checked.
Not runnable on the offline development machine; written against huggingface_hub's ``snapshot_download``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from hearlike.models.loaders import CODE_DIR, companion_dir
from hearlike.models.registry import get_entry
from hearlike.models.tiny import write_model_marker

log = logging.getLogger("hearlike.models.download")


class UnpinnedRevisionError(ValueError):
    """The registry entry has no pinned revision."""


def _resolve_head(hub_id: str) -> str:
    from huggingface_hub import HfApi

    return str(HfApi().model_info(hub_id).sha)


def checkout_code(*, repo: str, commit: str, dest: Path) -> Path:
    """Clone ``repo`` and check out ``commit`` into ``dest`` (without ``.git``: the marker records the files)."""
    import subprocess
    import tempfile

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    with tempfile.TemporaryDirectory(prefix="hearlike-code-") as tmp:
        clone = Path(tmp) / "repo"
        for cmd in (["git", "clone", "--quiet", "--no-checkout", repo, str(clone)],
                    ["git", "-C", str(clone), "checkout", "--quiet", commit]):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        if head != commit:
            raise RuntimeError(f"{repo}: checked out {head}, expected {commit}")
        shutil.rmtree(clone / ".git")
        shutil.copytree(clone, dest)
    return dest


def fetch_file(*, url: str, sha256: str, dest: Path) -> Path:
    """Download ``url`` to ``dest`` (atomically) and refuse it unless its sha256 is ``sha256``."""
    import hashlib
    import tempfile
    import urllib.request

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with urllib.request.urlopen(url) as resp, tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        for chunk in iter(lambda: resp.read(1 << 20), b""):
            digest.update(chunk)
            tmp.write(chunk)
    if digest.hexdigest() != sha256:
        Path(tmp.name).unlink()
        raise ValueError(f"{url}: sha256 {digest.hexdigest()} differs from the registry's {sha256}; not saved")
    Path(tmp.name).replace(dest)
    return dest


def download_model(*, key: str, registry: Path, dest: Path, allow_unpinned: bool = False,
                   include_companions: bool = True) -> Path:
    """Snapshot ``key``'s repo at its pinned revision into ``dest``; returns ``dest``.

    With ``allow_unpinned`` an unpinned entry downloads the current head commit and logs it so it can be
    pinned; ``trust_remote_code`` still stays refused until the registry pins that commit.
    """
    from huggingface_hub import snapshot_download

    entry = get_entry(registry, key)
    if entry.builder is not None or entry.hub_id is None:
        raise ValueError(f"{key}: demo model; build it with hearlike.models.tiny.build_demo_model instead")
    revision = entry.revision
    if revision is None:
        if not allow_unpinned:
            raise UnpinnedRevisionError(
                f"{key}: revision is not pinned in {registry}; look up the commit you reviewed on "
                f"https://huggingface.co/{entry.hub_id}/commits/main and set `revision:` to it "
                "(or pass --allow-unpinned to download the current head and record its commit)")
        revision = _resolve_head(entry.hub_id)
        log.warning("%s: registry revision unpinned; downloading head %s — pin it: revision: %s",
                    key, revision, revision)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo_id=entry.hub_id, revision=revision, local_dir=str(dest))
    companions: list[dict[str, Any]] = []
    if include_companions:
        for comp in entry.companions:
            c_rev = comp["revision"]
            if c_rev is None:
                if not allow_unpinned:
                    raise UnpinnedRevisionError(f"{key}: companion {comp['hub_id']} has no pinned revision")
                c_rev = _resolve_head(comp["hub_id"])
                log.warning("%s: companion %s unpinned; downloading head %s", key, comp["hub_id"], c_rev)
            c_dir = companion_dir(dest, comp["hub_id"])
            snapshot_download(repo_id=comp["hub_id"], revision=c_rev, local_dir=str(c_dir))
            companions.append({"hub_id": comp["hub_id"], "revision": c_rev, "dir": str(c_dir.relative_to(dest))})
    for item in entry.files:
        fetch_file(url=item["url"], sha256=item["sha256"], dest=dest / item["path"])
    extra: dict[str, Any] = {"companions": companions, "registry_pinned": entry.pinned}
    if entry.code:
        checkout_code(repo=entry.code["repo"], commit=entry.code["commit"], dest=dest / CODE_DIR)
        extra["code"] = {"repo": entry.code["repo"], "commit": entry.code["commit"]}
    write_model_marker(dest, hub_id=entry.hub_id, revision=revision, created_by="hearlike.models.download",
                       extra=extra)
    log.info("%s: %s@%s downloaded to %s", key, entry.hub_id, revision, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    from hearlike.models.registry import default_registry_path

    ap = argparse.ArgumentParser(prog="python -m hearlike.models.download", description=__doc__.splitlines()[0])
    ap.add_argument("key", help="registry key, e.g. qwen2-audio-7b")
    ap.add_argument("--dest", required=True, type=Path, help="model directory to create (e.g. models/KEY)")
    ap.add_argument("--registry", type=Path, default=default_registry_path())
    ap.add_argument("--allow-unpinned", action="store_true",
                    help="download the current head of an unpinned entry and record its commit")
    ap.add_argument("--no-companions", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    download_model(key=args.key, registry=args.registry, dest=args.dest, allow_unpinned=args.allow_unpinned,
                   include_companions=not args.no_companions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
