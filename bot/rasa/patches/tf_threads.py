"""TensorFlow's thread pools at one thread each while the server runs (`rasa run` only).

A message's tensors are tiny: a second thread per op costs more in handing work over than
it saves, and deploy/ runs one Rasa process per core. In `make bench` this took Rasa from 39
to 35 ms of CPU per turn. Training, tests and evaluation keep TensorFlow's defaults, and an
operator's own TF_INTRA_OP_PARALLELISM_THREADS / TF_INTER_OP_PARALLELISM_THREADS win.
"""

from __future__ import annotations

import os
import sys

# The variables Rasa's `setup_tf_environment` hands to TensorFlow when it starts.
VARIABLES = ("TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS")


def install() -> None:
    """One thread per pool when this process is `rasa run`, before TensorFlow starts."""
    if sys.argv[1:2] == ["run"]:
        for name in VARIABLES:
            # Written for Rasa to read; an operator's value stays.
            os.environ.setdefault(name, "1")
