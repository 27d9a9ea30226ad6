"""The request engine: sends model calls concurrently, stores every answer, retries, limits."""
