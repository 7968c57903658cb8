"""Carrier API clients: one module per provider behind the `Provider` interface."""
