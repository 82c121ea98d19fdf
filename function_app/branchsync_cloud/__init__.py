"""The cloud side of branchsync: a plain-Python core, one storage seam, and the jobs the Azure
Functions handlers in function_app.py call through one facade.

- apply.py, catalog.py, branch_keys.py, differences.py, nonces.py: pure planning and rules (no I/O)
- store.py: the storage interface and its error tree; table_store.py: Azure Table Storage
- service.py: the facade the handlers and the dev host hold, over the jobs below
- request_auth.py: a branch's signed request and its nonce, the admin key
- branches.py: create, enroll, rotate, revoke and list branches
- pull.py: what a branch pulls (catalog page, acks, how to push)
- ingest.py: the push route, applying a queue message exactly once, dead letters
- catalog_writes.py: catalog import, delete and compaction
- reports.py: the sales export and the price-differences report
- conflicts.py: re-read and re-plan after a lost optimistic write
- http.py: reading requests (headers, query parameters, bodies) and JSON answers for the handlers
- queue_access.py: the sales queue and its push SAS; credentials.py: the managed identity
- settings.py: the app settings, read once; telemetry.py: logs' dimensions and metrics
- faults.py: failpoints for the fault-injection suite (off unless configured)
"""
