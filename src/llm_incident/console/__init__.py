"""The local console: the command core without Slack (`llm-incident shell`, and inside `demo`)."""
