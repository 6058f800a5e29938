"""Triage: when a route's stats shifted, where, and why — statistics over the events, no LLM."""
