"""Carrier push webhooks (ShipEngine `track` events), verified before anything is written."""
