"""Stopping a run cleanly when asked: SIGTERM, SIGUSR1 and SIGINT.

SLURM sends SIGTERM (or SIGUSR1, with ``#SBATCH --signal=USR1@90``) some time before it kills a job, a
spot instance gets SIGTERM before it goes away, and Ctrl-C sends SIGINT. On the first of these the
trainer finishes the optimiser step it is in, writes ``last.pt`` and exits with :data:`EXIT_PREEMPTED`,
the code a job script requeues on; the same command run again continues the run exactly. A second
signal stops at once, without writing (the previous ``last.pt`` stays), with exit code 128 + its number,
as a shell reports a process killed by that signal. Under DDP the ranks agree on the step to stop at
(:meth:`Trainer._agree`), whichever of them got the signal.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from vast.errors import VastError

_logger = logging.getLogger(__name__)

EXIT_PREEMPTED = 75  # EX_TEMPFAIL in sysexits.h: a temporary failure, run the same command again
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name)
)


class TrainingStopped(VastError):
    """A signal stopped the run at a step boundary, after ``last.pt`` was written."""

    exit_code = EXIT_PREEMPTED

    def __init__(self, signal_name: str, checkpoint: str, epoch: int, step: int) -> None:
        super().__init__(
            f"{signal_name}: stopped at optimiser step {step} (epoch {epoch + 1}) and wrote {checkpoint}; "
            "run the same command again to continue"
        )
        self.signal_name = signal_name
        self.checkpoint = checkpoint


class StoppedAtOnce(VastError):
    """A second signal: the run stopped where it was, without writing a checkpoint."""

    def __init__(self, signal_name: str, signum: int) -> None:
        super().__init__(f"second {signal_name}: stopped at once; the last checkpoint written stays as it was")
        self.exit_code = 128 + signum


class StopSignals:
    """While active (a ``with`` block in the main thread), the first stop signal sets :attr:`received`
    and a second one raises :class:`StoppedAtOnce`. Elsewhere (another thread) it does nothing."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = name
            _logger.warning("%s: finishing the current step, then writing last.pt (again: stop at once)", name)
            return
        raise StoppedAtOnce(name, signum)


def ignore_stop_signals() -> None:
    """For data-loading workers: the training process decides when to stop, and shuts them down."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
