"""One module per page: PATH, TITLE, layout() and register(app, source)."""
