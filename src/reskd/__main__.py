import sys

from reskd.cli import main

sys.exit(main())
