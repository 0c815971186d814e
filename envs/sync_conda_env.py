"""Regenerate envs/hearlike.yaml from envs/requirements.lock.txt so the conda and pip pins never drift.

    python envs/sync_conda_env.py          # rewrite envs/hearlike.yaml
    python envs/sync_conda_env.py --check  # exit 1 if it is out of date (tests/test_envs.py runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).parent
HEADER = """\
# Conda environment of the study, generated from requirements.lock.txt by envs/sync_conda_env.py.
# Do not edit by hand: the pins must equal the pip lock that CI installs (checked by tests/test_envs.py).
# On a GPU cluster replace the torch line's local version (+cpu) by the CUDA build of the same version.
name: hearlike
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - pip:
"""


def render(lock: Path = HERE / "requirements.lock.txt") -> str:
    pins = [line.strip() for line in lock.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return HEADER + "".join(f"      - {pin}\n" for pin in pins) + "      - -e ..\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    target = HERE / "hearlike.yaml"
    text = render()
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is out of date: run python envs/sync_conda_env.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
