import sys

from raft3d.cli import main

sys.exit(main())
