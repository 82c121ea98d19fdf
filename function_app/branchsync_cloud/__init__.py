"""The cloud side of branchsync: a plain-Python core, one storage seam, and the service
the Azure Functions handlers in function_app.py call.

- apply.py, catalog.py: pure planning (no I/O)
- store.py: the storage interface and its error tree; table_store.py: Azure Table Storage
- service.py: the operations (enroll, pull, apply a queue message, admin)
- http.py: request parsing and JSON answers for the thin HTTP handlers
"""
