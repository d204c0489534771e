"""realtime: secure, real-time in-app messages."""
