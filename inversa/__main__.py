import sys

from inversa.cli import main

sys.exit(main())
