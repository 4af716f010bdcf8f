"""The contract's parser under the daemon's older name: see contract_parse.py.

/feed bodies are parsed by contract_parse, which the adapters share; the names below
stay importable from here for the modules (and tools) that take a Batch or STATE_CODES.
"""

from contract_parse import (
    MAX_FIELDS,
    STATE_CODES,
    Batch,
    FeedRejected,
    TooManyRecords,
    check_records,
    fast_batch,
    load_records,
    parse_feed,
    parse_records,
)

__all__ = [
    "MAX_FIELDS",
    "STATE_CODES",
    "Batch",
    "FeedRejected",
    "TooManyRecords",
    "check_records",
    "fast_batch",
    "load_records",
    "parse_feed",
    "parse_records",
]
