import sys

from feedbench.pipelines.cli import main

sys.exit(main())
