"""The branchsync wire contract: what a branch and the cloud say to each other.

Both sides import this package and nothing in it does I/O. `docs/protocol.md`
describes every message and endpoint defined here.
"""

PROTOCOL_VERSION = 1
