"""Command intake: messages, one command table, envelope checks, handlers, unit of work, consumer."""
