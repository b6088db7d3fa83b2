"""Web view and JSON API (Starlette)."""
