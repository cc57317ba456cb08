"""The library demo app: authors, books, members and their loans."""
