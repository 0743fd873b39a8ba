"""The billing domain: money, postings, aggregates, events and rules. Pure: no I/O, no clock."""
