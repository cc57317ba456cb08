"""Core types (bottom layer, stdlib only): events, errors, configuration, the event log.

Everything above builds on these; this layer imports nothing else of the package.
"""
