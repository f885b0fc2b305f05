import sys

from spinelab.cli import main

sys.exit(main())
