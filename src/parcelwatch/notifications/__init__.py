"""Notifications to people: milestones of their trackers' shipments, written to an outbox in
the sync write's transaction and delivered at least once to their channels."""
