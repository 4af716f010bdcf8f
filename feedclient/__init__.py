"""The /feed protocol, shared by every sender and by the daemon that answers.

- outcomes: the names of what becomes of a record (OUTCOMES) and Counts, the one counter
  of them (the daemon's /health counts, the generator's, an adapter's totals);
- answer: FeedAnswer, the typed /feed answer the daemon builds and the clients read
  (read_answer, tolerant of older daemons);
- post: FEED_PATH, the POST itself (post_feed, resending once on a connection broken
  by the keep-alive race), which answers to retry (RETRYABLE) and the 401/403 hints.

It imports only the standard library, httpx, pydantic and data_contract: the adapters,
the simulator (simfeed) and the daemon (inference) all import it, never the reverse.
"""
