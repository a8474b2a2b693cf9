"""Read models: projections of the event log into SQLite tables, and their queries."""
