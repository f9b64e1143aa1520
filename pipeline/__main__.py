import sys

from pipeline.interrupt import main

sys.exit(main())
