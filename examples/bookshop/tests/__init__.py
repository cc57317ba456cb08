"""Tests of the bookshop demo."""
