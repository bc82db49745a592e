"""``python -m longform.emulator``: run the emulator in the foreground."""

import sys

from longform.emulator.cli import main

sys.exit(main())
