import sys

from probeapp_operator.cli import main

sys.exit(main())
