"""`python -m initcontainer` == `fsm-init`."""

import sys

from .cli import main

sys.exit(main())
