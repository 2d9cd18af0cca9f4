import sys

from flowaccent.cli.main import main

sys.exit(main())
