"""Incidents: the record, its timeline, the runbook it is run from."""
