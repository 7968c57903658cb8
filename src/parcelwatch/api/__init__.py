"""The FastAPI application: REST API under /api, operations endpoints at the root."""
