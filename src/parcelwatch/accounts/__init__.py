"""People: accounts with a role and a password (Argon2), managed by `parcelwatch users`."""
