"""Deterministic simulation of Raft3D's consensus core.

Real ``RaftCore`` objects run in virtual time over a simulated network that drops,
duplicates, delays, reorders and partitions messages, while nodes crash and restart from an
in-memory storage that keeps only what a Ready asked to persist. An omniscient checker
verifies Raft's safety properties after every step. Everything derives from one seed;
replay a seed with ``python -m tests.simulation --seed N --nodes K --steps S``.
"""
