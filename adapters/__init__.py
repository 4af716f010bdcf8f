"""Adapters: fetch metrics from MongoDB or Elasticsearch and POST them to the daemon's /feed.

mongodb_adapter.py and elasticsearch_adapter.py are the entry points; base.py is the loop
they share (cursor, quarantine, forwarding), runner.py their command line.
"""
