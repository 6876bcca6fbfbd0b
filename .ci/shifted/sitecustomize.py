"""Loaded only for CI's run under a shifted clock (libfaketime).

Two faults of Debian 12's libfaketime 0.9.10, worked around here:

- It rejects clock_nanosleep with EINVAL when the monotonic clock is left real,
  so time.sleep() raises; sleep in select() instead.
- Its clock_gettime reads the environment (getenv("FAKETIME_WAIT_MS")) on every
  call, and CPython calls it through pthread_cond_timedwait whenever a thread
  waits for the GIL, without the GIL. A test thread that adds a variable to the
  environment meanwhile (monkeypatch.setenv, CliRunner's env) makes the C
  library move the environment's array, and the waiting thread reads freed
  memory: a segfault, seen on CI and reproduced by setting variables in a loop
  while three threads spin. So in this run the C environment is never changed
  after start-up: os.environ keeps its changes in Python, and every child
  process gets os.environ explicitly.
"""

import errno
import os
import select
import subprocess
import time

_sleep = time.sleep


def _sleep_in_select(seconds: float) -> None:
    try:
        _sleep(seconds)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        select.select([], [], [], seconds)


time.sleep = _sleep_in_select


def _keep_in_python(*args: object) -> None:
    """os.putenv and os.unsetenv, which os.environ calls on each change: do nothing."""


os.putenv = _keep_in_python
os.unsetenv = _keep_in_python

_popen_init = subprocess.Popen.__init__
_ENV_POSITION = 10  # Popen(args, bufsize, executable, stdin, stdout, stderr, preexec_fn,
#                         close_fds, shell, cwd, env, ...): env given by position


def _popen_with_python_environ(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    if len(args) <= _ENV_POSITION and kwargs.get("env") is None:
        kwargs["env"] = dict(os.environ)
    _popen_init(self, *args, **kwargs)


subprocess.Popen.__init__ = _popen_with_python_environ  # type: ignore[method-assign]
