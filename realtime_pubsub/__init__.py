"""realtime_pubsub: a structured-concurrency client for Realtime Pub/Sub, on trio and asyncio
through anyio, and a local gateway for development and tests.

The local gateway (:mod:`realtime_pubsub.gateway`), the blocking client
(:mod:`realtime_pubsub.blocking`) and the HTTP admin API's client
(:mod:`realtime_pubsub.admin`) are imported on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._backoff import ReconnectPolicy as ReconnectPolicy
from ._client import Client as Client
from ._client import ConnectionState as ConnectionState
from ._client import Listener as Listener
from ._client import UrlProvider as UrlProvider
from ._client import connect as connect
from ._errors import AckTimeout as AckTimeout
from ._errors import AdminAPIError as AdminAPIError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import CertificateError as CertificateError
from ._errors import ClientClosed as ClientClosed
from ._errors import ConnectError as ConnectError
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import ConnectTimeout as ConnectTimeout
from ._errors import Forbidden as Forbidden
from ._errors import HandshakeError as HandshakeError
from ._errors import MessageTooLarge as MessageTooLarge
from ._errors import ProtocolError as ProtocolError
from ._errors import RealtimePubSubError as RealtimePubSubError
from ._errors import ReplyTimeout as ReplyTimeout
from ._errors import SlowConsumer as SlowConsumer
from ._errors import WaitTimeout as WaitTimeout
from ._messages import Ack as Ack
from ._messages import ClientInfo as ClientInfo
from ._messages import CloseInfo as CloseInfo
from ._messages import ConnectionInfo as ConnectionInfo
from ._messages import IncomingMessage as IncomingMessage
from ._messages import PresenceMessage as PresenceMessage
from ._messages import ResponseMessage as ResponseMessage
from ._pending import Receipt as Receipt
from ._streams import MessageStream as MessageStream
from ._streams import Overflow as Overflow
from ._transport import Transport as Transport
from ._transport import TransportConnection as TransportConnection
from ._transport import WebSocketsTransport as WebSocketsTransport
from ._version import __version__ as __version__

__all__ = [
    # the client
    "Client",
    "CloseInfo",
    "ConnectionState",
    "Listener",
    "MessageStream",
    "Overflow",
    "Receipt",
    "ReconnectPolicy",
    "UrlProvider",
    "connect",
    # transports
    "Transport",
    "TransportConnection",
    "WebSocketsTransport",
    # messages
    "Ack",
    "ClientInfo",
    "ConnectionInfo",
    "IncomingMessage",
    "PresenceMessage",
    "ResponseMessage",
    # errors
    "AckTimeout",
    "AdminAPIError",
    "AuthenticationError",
    "CertificateError",
    "ClientClosed",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "Forbidden",
    "HandshakeError",
    "MessageTooLarge",
    "ProtocolError",
    "RealtimePubSubError",
    "ReplyTimeout",
    "SlowConsumer",
    "WaitTimeout",
    # the local gateway, the admin API
    "gateway",
    "admin",
    "__version__",
]

if TYPE_CHECKING:
    from . import admin as admin
    from . import blocking as blocking
    from . import gateway as gateway

#: The submodules reached as attributes of the package, imported on first use: a client
#: does not pay for the local gateway (nor PyJWT), async code not for the blocking client,
#: nobody for httpx who does not use the admin API.
_LAZY = frozenset({"admin", "blocking", "gateway"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
