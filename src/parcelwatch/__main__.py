"""Allows `python -m parcelwatch`."""

from parcelwatch.cli.main import main

if __name__ == "__main__":
    main()
