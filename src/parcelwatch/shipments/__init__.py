"""Shipments: registering tracking numbers, listing, editing and deleting them."""
