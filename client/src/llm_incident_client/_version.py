"""The client package's version (its own: it ships apart from the server)."""

__version__ = "0.1.0"
