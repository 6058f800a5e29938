"""Route metrics: window statistics, the event filter language, event search."""
