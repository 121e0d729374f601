"""``python -m voicedesk``."""

import sys

from voicedesk.app import main

sys.exit(main())
