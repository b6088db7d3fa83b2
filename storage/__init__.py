"""Persistence: tables, engine, repositories. Stores; decides nothing."""
