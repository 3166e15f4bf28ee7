"""`vast train` as a real process, for the preemption tests: ``python paced_train.py ARGS`` is
``vast train ARGS`` with two test hooks, both off unless their variable is set:

- ``VAST_TEST_STEP_SECONDS``: sleep this long after each optimiser step of the first attempt
  (``TORCHELASTIC_RESTART_COUNT`` 0), so that a test can signal or kill the run mid-epoch;
- ``VAST_TEST_PIDS``: a folder where each rank writes its process id as ``<attempt>-<rank>.pid``.

The weights are not touched: a paced run computes exactly what ``vast train`` computes.
"""

import os
import sys
import time
from pathlib import Path

import vast.engine.train as engine
from vast.cli.main import main

attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
rank = int(os.environ.get("RANK", "0"))
if os.environ.get("VAST_TEST_PIDS"):
    pids = Path(os.environ["VAST_TEST_PIDS"])
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{attempt}-{rank}.pid").write_text(str(os.getpid()))

pause = float(os.environ.get("VAST_TEST_STEP_SECONDS", "0"))
if pause > 0 and attempt == 0:
    real_step = engine.Trainer._optimizer_step

    def paced_step(self: engine.Trainer) -> None:
        real_step(self)
        time.sleep(pause)

    engine.Trainer._optimizer_step = paced_step

sys.exit(main(["train", *sys.argv[1:]]))
