"""Benchmarks, apart from the engine: ground-truth tables (`truth`), strategy replays on them
(`replay`), and the overhead, start-up and Ray-scaling measurements (`overhead`). Each writes
JSON that `autoprune bench ...` prints; nothing here runs during a search."""
