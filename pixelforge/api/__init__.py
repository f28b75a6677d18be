"""The HTTP and websocket API: routers per resource, auth dependencies, error mapping."""
