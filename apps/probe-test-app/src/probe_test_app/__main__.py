import sys

from probe_test_app.cli import main

sys.exit(main())
