"""The bookshop demo application (SQLAlchemy 2 + SQLite)."""
