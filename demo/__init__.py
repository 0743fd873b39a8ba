"""`ledger demo`: a simulated subscription book played through the ledger, and its dashboard."""
