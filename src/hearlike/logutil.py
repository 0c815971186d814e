"""Logging for workflow scripts: everything a step prints or logs goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def step_log(path: str | Path, step: str) -> Iterator[logging.Logger]:
    """Route logging, stdout and stderr (progress bars) of one step to ``path``; log failures with traceback."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        logger = logging.getLogger(f"hearlike.step.{step}")
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            try:
                logger.info("start %s", step)
                yield logger
            except BaseException:
                logger.exception("step %s failed", step)
                raise
            finally:
                logger.info("end %s after %.1f s", step, time.perf_counter() - t0)
        root.removeHandler(handler)
        print(f"[{step}] log: {path}", file=sys.stderr)
