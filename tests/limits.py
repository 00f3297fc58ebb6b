"""Limits shared by the tests that start processes.

HANG_S is how long a child process may run before a test calls it hung. It
guards against hangs; it is not a speed check, so it sits far above the
slowest run seen on a loaded 2-core machine: no test depends on the speed
of the machine it runs on.
"""

HANG_S = 1800
