import sys

from fabric.cli import receiver_main

sys.exit(receiver_main())
