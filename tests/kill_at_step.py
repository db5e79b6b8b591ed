"""`python tests/kill_at_step.py STEP SIGNAL reskd-args...`: the `reskd` command line, in a
process that sends itself SIGNAL (KILL, TERM, INT) once a training run reaches global step
STEP, to test crash and interrupt recovery the way a user meets them.

The product has no hook for this: every `reskd.runs.run_train` the command makes (one for
`reskd train`, several for `reskd study ...`) is given an `on_step` callback that signals.
Under `torchrun` each process signals itself, as a job scheduler's signal reaches them all.
"""

from __future__ import annotations

import os
import signal
import sys

import reskd.runs
from reskd.cli import main


def main_signalled_at(step: int, signal_name: str, argv: list[str]) -> int:
    sig = getattr(signal, "SIG" + signal_name.upper())
    run_train = reskd.runs.run_train

    def on_step(global_step: int) -> None:
        if global_step == step:
            os.kill(os.getpid(), sig)

    def run_train_signalled(*args, **kwargs):
        return run_train(*args, on_step=on_step, **kwargs)

    reskd.runs.run_train = run_train_signalled  # the CLI and the studies import it when called
    return main(argv)


if __name__ == "__main__":
    sys.exit(main_signalled_at(int(sys.argv[1]), sys.argv[2], sys.argv[3:]))
