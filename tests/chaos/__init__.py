"""Jepsen-style verification of the running service: real node processes, concurrent clients,
seeded faults (kills, pauses, restarts, partitions through a link proxy, kills during
InstallSnapshot) and a checker of the recorded history. ``python -m tests.chaos --help``.
"""
