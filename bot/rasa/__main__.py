"""`python -m bot.rasa run ...`: Rasa's own command line with our patches installed."""

import sys

from bot.rasa.server import main

if __name__ == "__main__":
    sys.argv[0] = "rasa"
    main()
