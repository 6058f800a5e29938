"""LLM call events: the table, validation, pricing, redaction and ingest."""
