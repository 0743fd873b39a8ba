"""Benchmarks of the ledger: measurements run by hand (`python -m bench ...`), never in CI."""
