"""Custom actions of the assistant, served by the rasa_sdk action server."""

from bot import logs

# rasa_sdk imports this package before it serves: every log line of the action server masked.
logs.install()
