"""The sync engine: keeps every active shipment current (updater, `sync`, manual refresh)."""
