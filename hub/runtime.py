"""Process-wide tuning for crmhub's own processes (the CLI, the server, translation workers).

Called at the start of each such process, never on import: a library that imports crmhub keeps
its own settings.
"""

from __future__ import annotations

import gc

# Measured on the 10,000-mail IMAP bench: with the default thresholds (700, 10, 10) the main
# process spent 0.5 s in 700 collections, re-scanning the modules, the directory index and the
# database layer each time; frozen and with these, 0.1 s in 150.
GC_THRESHOLDS = (20_000, 50, 100)
# glibc gives every thread that allocates its own malloc arena (up to eight per core) and keeps
# what each one held at its peak. Measured on the 10,000-mail bench, interleaved runs: the main
# process peaked at 137-140 MiB RSS with the default, 130-135 MiB with two arenas and 124-126
# MiB with one, the sync equally fast with two (3.18-3.26 s against 3.21-3.41 s) and in one
# series 0.1 s slower with one: SQLite's thread then waits for the arena the interpreter's
# thread holds. Two give the main thread and SQLite's thread one each.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def tune_gc() -> None:
    """What exists now (modules, start-up state) is never collected again; young objects are
    collected less often. Reference counting still frees almost everything at once."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the process starts threads; False where that is not
    possible (another C library: musl ignores it, macOS has no mallopt)."""
    import ctypes  # here: the translation workers' fork server imports this module too

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_ARENA_MAX, arenas))
