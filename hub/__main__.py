"""`python -m hub` and the `crmhub` console script.

Kept tiny on purpose: the translation workers' fork server imports the program's main module,
and should not load the whole hub for it (hub/translation.py).
"""

from __future__ import annotations

import sys


def run() -> None:
    from hub.runtime import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts (see hub/runtime.py)
    if [arg for arg in sys.argv[1:] if not arg.startswith("-")][:1] == ["sync"]:
        from hub.translation import start_workers_early

        start_workers_early()
    from hub.cli import _entry  # here, not at the top: see the docstring

    _entry()


if __name__ == "__main__":
    run()
