import sys

from raft3d.front.process import main

if __name__ == "__main__":
    sys.exit(main())
