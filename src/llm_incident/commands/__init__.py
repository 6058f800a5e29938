"""The command core: `/llm-incident <verb> …` text → typed command → handler → reply model.

Slack and the local console are two renderers of the same replies.
"""
