"""Alembic migrations, shipped inside the package so `parcelwatch db upgrade` works anywhere."""
