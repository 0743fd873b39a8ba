"""Generators of docs/: the message catalogue and the worked example."""
