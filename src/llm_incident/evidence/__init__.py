"""Evidence: events attached to an incident with a good/bad label and a note; sampling; eval export."""
