"""Benchmarks: each module has a ``main()`` and prints ratios against a baseline measured in the same run."""
