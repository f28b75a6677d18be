"""The HTTP kit shared by the native API and the dialects: auth dependencies, error shapes,
request limits and URLs. It holds no routes."""
