"""`parcelwatch worker`: the background loops (sync, notifications) in a process of their own."""
