"""`python -m gateway` is the `logs-gateway` command."""

import sys

from gateway.app.cli import main

sys.exit(main())
