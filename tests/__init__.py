"""facemap's tests. Imported before any test module or conftest, so this sets what must hold
before numpy loads."""

import os

# One BLAS thread in each test worker and in the commands the tests start: the two workers
# (pyproject's -n 2) already use both cores, and threaded, the 3DMM fit's small solves took
# more time, not less (30 s against 32 s on one test, with twice the CPU).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
