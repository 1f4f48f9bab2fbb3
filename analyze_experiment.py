#!/usr/bin/env python
"""The handbook's CLI name: `python analyze_experiment.py --run-name NAME ...` is `experiment-analyzer ...`."""

import sys

from analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
