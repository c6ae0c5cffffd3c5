"""One-process edge: the adapter, collectors, agent and checker in one asyncio event loop (docs/edge.md)."""
