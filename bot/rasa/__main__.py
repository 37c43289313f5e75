"""`python -m bot.rasa <rasa command>`: Rasa's command line with the enabled patches."""

from bot.rasa.server import main

if __name__ == "__main__":
    main()
