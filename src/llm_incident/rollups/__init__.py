"""Per-minute rollups of events: aggregates and percentile sketches for long windows."""
