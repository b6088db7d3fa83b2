"""Typed settings for crmhub."""
