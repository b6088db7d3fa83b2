"""Connectors fetch items from a source and translate them into hub.model types."""
