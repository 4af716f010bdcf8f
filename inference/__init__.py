"""The inference daemon's parts: ingest, buffers, forecasters, service, persistence, app."""
