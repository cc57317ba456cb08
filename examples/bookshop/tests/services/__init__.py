"""Tests of the service layer in ``bookshop.services``."""
