"""Process tuning: the malloc arena cap really holds the number of arenas down.

Each case runs in a child process, since the cap is process-wide and must come before threads.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from hub.runtime import MALLOC_ARENAS

ROOT = Path(__file__).resolve().parents[2]

# Four threads allocate (a bytearray above 512 bytes comes from malloc) and stay alive together,
# so none can take over another's arena; then glibc's malloc_info() lists the arenas as <heap>.
PROGRAM = """
import ctypes, sys, tempfile, threading
from hub.runtime import limit_malloc_arenas
if sys.argv[1] == "limited":
    assert limit_malloc_arenas()
together = threading.Barrier(5)
def allocate():
    kept = [bytearray(100_000) for _ in range(20)]
    together.wait()
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads:
    t.start()
together.wait()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    handle = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    print(open(out.name).read().count("<heap nr="))
together.wait()
for t in threads:
    t.join()
"""


def _arenas(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_the_arena_cap_holds_while_threads_allocate() -> None:
    assert _arenas("default") > MALLOC_ARENAS  # the case the cap is for
    assert _arenas("limited") <= MALLOC_ARENAS
