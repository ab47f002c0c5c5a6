import sys

from rabbitmq_worker.cli import main

sys.exit(main())
