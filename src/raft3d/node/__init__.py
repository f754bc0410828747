"""The asyncio driver that runs the Raft core with storage, transport and a state machine."""
