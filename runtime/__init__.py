"""Entry points: the `ledger` CLI, the runner of the loops, send, the clock, the analytics role."""
