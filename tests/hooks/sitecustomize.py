"""The test launcher's hooks, installed in every Python process the test suite starts
(``tests/conftest.py`` puts this directory first on ``PYTHONPATH``; Python imports
``sitecustomize`` at start-up). Run-time code never imports test support: it offers seams
(``durable.set_checkpoint_hook``, ``session.set_default_clock``) and this fills them when a
test asks for it through the environment:

* ``LSST_CONSUMER_TEST_CRASH=POINT:N``: SIGKILL at the N-th ``durable.checkpoint(POINT)``;
* ``LSST_CONSUMER_TEST_START_TIME=ISO``: the consumer's clock starts there and ticks on.
"""

import os
import sys

if os.environ.get("LSST_CONSUMER_TEST_CRASH") or os.environ.get("LSST_CONSUMER_TEST_START_TIME"):
    _repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if _repo not in sys.path:
        sys.path.append(_repo)
    if os.environ.get("LSST_CONSUMER_TEST_CRASH"):
        from alert_pipeline import durable
        from devtools.faults import crash_hook_from_environment

        durable.set_checkpoint_hook(crash_hook_from_environment())
    if os.environ.get("LSST_CONSUMER_TEST_START_TIME"):
        from alert_pipeline.consumer import session
        from devtools.clock import clock_from_environment

        session.set_default_clock(clock_from_environment())
