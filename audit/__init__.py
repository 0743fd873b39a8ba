"""The auditor's toolkit: verify the history, sign checkpoints, prove events (reads the store only)."""
