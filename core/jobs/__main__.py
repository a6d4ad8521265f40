"""A worker process: `python -m core.jobs JOB_ID [TOKEN]` (the runner starts it; TOKEN identifies it)."""
import sys

from core.jobs import runner

sys.exit(runner.work(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
