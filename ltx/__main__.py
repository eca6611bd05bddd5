import sys

from ltx.cli import main

sys.exit(main())
