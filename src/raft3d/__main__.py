import sys

from raft3d.cli import main

# Guarded: a worker process started with "spawn" imports this module too, and must not serve.
if __name__ == "__main__":
    sys.exit(main())
