"""The `parcelwatch` command line."""
