"""Storage of the event log: msgpack encoding, stable topics, SQLite backend settings."""
