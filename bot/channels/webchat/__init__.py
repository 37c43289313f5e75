"""The web chat: the socket.io channel (`channel.py`), its turns shared by every Rasa
process through Redis (`shared_turns.py`), and the chat page (`page.py`).

credentials.yml and the deploy files name the channel `bot.channels.webchat.WebChatInput`.
"""

from bot.channels.webchat.channel import WebChatInput
from bot.channels.webchat.shared_turns import CLAIMED_PREFIX, PROCESSES_KEY, SharedTurns

__all__ = ["CLAIMED_PREFIX", "PROCESSES_KEY", "SharedTurns", "WebChatInput"]
