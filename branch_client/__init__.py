"""The branch side of branchsync: sale entry into SQLite, and sync with the cloud.

Modules:
- `paths`: where the branch keeps its data (never next to the executable).
- `sale_entry`: parse sale items and build sales (pure, no I/O).
- `schema`: the SQLite tables and the migration steps that create and upgrade them.
- `identity`: the branch's enrollment identity and its protected secret file.
- `store`: the SQLite store; every method is one transaction.
- `cloud_client`: the one I/O seam to the cloud (HTTP and the sales queue).
- `sync`: the sync engine (pull, then push) and its states.
- `logs`: the rotating log file in the data home.
- `schedule`: the Windows scheduled task's XML and schtasks command lines (pure).
- `doctor`: health checks (pure) over gathered facts.
- `backup`: online backups of the database and restoring one.
- `version`: the version string, found without heavy imports.
- `cli`: the `branchsync` console script, a thin Typer adapter (heavy imports inside commands).
- `errors`: the exception tree, with stable codes and exit codes.
"""
