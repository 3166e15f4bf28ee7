"""`python -m vast` (also what `torchrun -m vast` runs)."""

import sys

from vast.cli.main import main

sys.exit(main())
