"""The worker process's garbage collector, set once for what the functions allocate.

An apply validates hundreds of sales into pydantic models and folds day summaries of
thousands of products: about a million short-lived objects for a 10,000-sale backlog, all
freed by reference counting as they go. Python's collector still runs every 700 new
objects, and each full collection walks everything the worker keeps for its life (modules,
models, the storage SDKs: about 100,000 objects, some 40 ms a time). `bench.apply` (10,000
sales, one thread): 0.87-0.94 s of CPU with Python's own settings, 0.78-0.79 s with these.
"""

import gc

# A young collection every 50,000 new objects instead of 700; the older two as Python has them.
THRESHOLDS = (50_000, 10, 10)


def settle() -> None:
    """Call once the worker has built what it keeps (the Service): leave it out of later
    collections (collected first, so only what is alive is kept) and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
