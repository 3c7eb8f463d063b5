import sys

from agentport.main import main

sys.exit(main())
