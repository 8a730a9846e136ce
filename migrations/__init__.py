"""Alembic migrations of the Shaobing database (run by ``shaobing.db.open_database``)."""
