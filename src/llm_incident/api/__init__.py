"""HTTP API adapters (FastAPI routers); each module registers one concern."""
