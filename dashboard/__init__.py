"""The Dash dashboard (dash_app.py): a client of the inference daemon's HTTP API."""
