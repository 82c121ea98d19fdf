"""The branch process's garbage collector, set once at start for what a sync allocates.

A first pull validates 100,000 products into pydantic models and a backlog's push reads
10,000 sales: millions of short-lived objects, freed by reference counting as they go.
Python's collector still runs every 700 new objects, and now and then walks everything
alive. In a first pull of 100,000 products that was 0.41 s of the till's 2.9 s of CPU; with
a young collection every 50,000 new objects, 0.15 s (this machine, the pull of bench.pull).
"""

import gc

# A young collection every 50,000 new objects instead of 700; the older two as Python has them.
THRESHOLDS = (50_000, 10, 10)


def settle() -> None:
    gc.set_threshold(*THRESHOLDS)
