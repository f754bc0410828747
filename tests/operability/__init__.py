"""The operability endpoints (snapshots, the event log, metrics) over a fake node."""
