"""Wire-protocol test servers that real database clients talk to over TCP."""
