"""`make bench`: speed ratios of the fast paths against the baselines they replace (see bench/run.py)."""
