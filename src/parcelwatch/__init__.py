"""parcelwatch: self-hosted shipment tracking that keeps itself current."""

__version__ = "0.1.0"

__all__ = ["__version__"]
