"""Where chats become numbers: immutable per-account snapshots, aggregates, waits."""
