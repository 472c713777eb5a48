"""REST API (FastAPI) and a small web dashboard over the same library calls as the CLI."""
