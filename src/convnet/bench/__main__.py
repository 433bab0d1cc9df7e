"""``python -m convnet.bench``: what ``convnet bench`` runs, and the contenders' own processes."""

import sys

from . import main

sys.exit(main())
