"""Tests of the JSON handlers in ``bookshop.api``."""
