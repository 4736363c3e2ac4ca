"""`python -m teacherclass`: the `teacherclass` command."""

import sys

from teacherclass.cli import main

sys.exit(main())
