"""realtime_pubsub: a structured-concurrency client for Realtime Pub/Sub, on trio and asyncio
through anyio, and a local gateway for development and tests."""

from . import gateway as gateway
from ._errors import AckTimeout as AckTimeout
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ClientClosed as ClientClosed
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import ConnectTimeout as ConnectTimeout
from ._errors import Forbidden as Forbidden
from ._errors import MessageTooLarge as MessageTooLarge
from ._errors import ProtocolError as ProtocolError
from ._errors import RealtimePubSubError as RealtimePubSubError
from ._errors import ReplyTimeout as ReplyTimeout
from ._errors import SlowConsumer as SlowConsumer
from ._messages import Ack as Ack
from ._messages import ClientInfo as ClientInfo
from ._messages import ConnectionInfo as ConnectionInfo
from ._messages import IncomingMessage as IncomingMessage
from ._messages import PresenceMessage as PresenceMessage
from ._messages import ResponseMessage as ResponseMessage
from ._version import __version__ as __version__

__all__ = [
    # messages
    "Ack",
    "ClientInfo",
    "ConnectionInfo",
    "IncomingMessage",
    "PresenceMessage",
    "ResponseMessage",
    # errors
    "AckTimeout",
    "AuthenticationError",
    "ClientClosed",
    "ConnectTimeout",
    "ConnectionClosed",
    "Forbidden",
    "MessageTooLarge",
    "ProtocolError",
    "RealtimePubSubError",
    "ReplyTimeout",
    "SlowConsumer",
    # the local gateway
    "gateway",
    "__version__",
]
