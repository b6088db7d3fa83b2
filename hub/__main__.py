"""`python -m hub` is `crmhub`."""

from hub.cli import _entry

if __name__ == "__main__":  # worker processes import this module again; they must not run it
    _entry()
