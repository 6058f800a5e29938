"""The Slack adapter: Bolt app, listeners, Block Kit rendering, the durable outbox."""
