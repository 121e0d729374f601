"""PyInstaller's entry point: the same ``main`` as the ``voicedesk`` command."""

import sys

from voicedesk.app import main

if __name__ == "__main__":
    sys.exit(main())
