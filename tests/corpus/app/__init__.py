"""A tiny library app (authors, books, reviews) whose code paths are the corpus scenarios."""
