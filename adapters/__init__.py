"""Adapters fetch metrics from MongoDB or Elasticsearch and POST them to the daemon's /feed.

They are the subject of the adapter issue; nothing here runs yet.
"""
