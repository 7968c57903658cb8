"""The web dashboard: server-rendered pages on the same service layer as the REST API."""
