"""Benchmarks (``make bench``): generated corpora and timed runs. Not part of the test suite."""
