"""State filters keep: byte caches in worker memory or Redis, and the worker's Redis client."""
