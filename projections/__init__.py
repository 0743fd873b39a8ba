"""Read models in PostgreSQL, built from the events topic."""
