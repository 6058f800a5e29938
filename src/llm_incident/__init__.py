"""llm-incident: a Slack bot and service for on-call engineers when an LLM feature misbehaves."""

__version__ = "0.1.0"
