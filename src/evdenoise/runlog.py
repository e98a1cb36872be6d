"""Send a step's logging, warnings, stdout and stderr to its log file (Snakemake's ``log:``)."""
from __future__ import annotations

import contextlib
import logging
import os
import traceback
from pathlib import Path
from collections.abc import Iterator


@contextlib.contextmanager
def logged(path: str | os.PathLike | None, level: int = logging.INFO) -> Iterator[None]:
    """Run the body with all output going to ``path`` (or the terminal when None).

    A failure is written to the log with its traceback and re-raised, so the job fails with
    the message in its log and a non-zero exit.
    """
    if path is None:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(True)
        try:
            yield
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            root.removeHandler(handler)
            logging.captureWarnings(False)
