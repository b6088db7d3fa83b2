"""`python -m hub` is `crmhub`."""

from hub.cli import _entry

_entry()
