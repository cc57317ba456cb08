"""The runtime of a run: executors, the fork server, readers, the launcher loop, run state.

Children are started here and their output and events come back on one queue.
"""
