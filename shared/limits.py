"""Bounds that every message and request is checked against.

The queue limits come from Azure Storage Queues: a message is at most 64 KiB as
sent, and the Functions queue trigger expects it base64-encoded.
"""

# Azure Storage Queue: 64 KiB per message as sent. Keep a margin for the SDK's XML envelope.
QUEUE_MESSAGE_MAX_CHARS = 64 * 1024
QUEUE_MESSAGE_BUDGET_CHARS = 60_000

# A decompressed sales batch may not exceed this (guards against compression bombs).
BATCH_MAX_JSON_BYTES = 4 * 1024 * 1024
BATCH_MAX_SALES = 2_000
# A till starts a new numbering generation with every restore; far more than a till ever needs.
GENERATION_MAX = 999

SALE_MAX_LINES = 200
# Split payments of one sale (cash + bKash + card ...).
SALE_MAX_PAYMENTS = 10
NAME_MAX_CHARS = 200
SKU_MAX_CHARS = 64
BARCODE_MAX_CHARS = 64
UNIT_MAX_CHARS = 16
BRANCH_NAME_MAX_CHARS = 40

# Money is integer paisa (1 taka = 100 paisa). 10 million taka per line is far beyond any till.
PAISA_MAX = 1_000_000_000
QTY_MAX_DECIMALS = 3
QTY_MAX = 100_000

CATALOG_PAGE_MAX = 1_000
# A till that says it takes more (the pull's `max_entries`) gets pages of up to this many
# entries: a first pull of 100,000 products in 10 requests instead of 100. Clouds that do
# not know the parameter ignore it and keep to `limit` (at most CATALOG_PAGE_MAX).
CATALOG_PAGE_WIDE_MAX = 10_000
CATALOG_IMPORT_MAX = 1_000
EXPORT_PAGE_MAX = 5_000

# Branch requests carry their time; the cloud refuses requests further off than this.
CLOCK_SKEW_SECONDS = 300

# Authentication headers (X-Branchsync-*): a nonce is 32 hex characters and a signature
# 64, a time about 10 digits. Longer values are refused before any work is done on them.
AUTH_HEADER_MAX_CHARS = 128
TIMESTAMP_MAX_DIGITS = 15
# Whole-number query parameters (cursor, limit, pending): seqs and versions stay below 2**53.
INT_PARAM_MAX_DIGITS = 16

# The push route (POST /api/push, the fallback to the queue SAS): at most this many queue
# messages per request, and a body of at most this many bytes (16 full messages and the JSON).
PUSH_ROUTE_MAX_MESSAGES = 16
PUSH_ROUTE_MAX_BODY_BYTES = 1024 * 1024
