"""The local Realtime Pub/Sub gateway: a protocol-faithful server for development and tests.

.. code-block:: python

    async with realtime_pubsub.gateway.serve() as gateway:
        url = gateway.url(gateway.mint_token(subject="alice"))

It speaks the wire protocol of the hosted service through the same codec as the client,
verifies tokens the way the service does (each app's ``authKey`` and ``adminKey``), and
adds fault injection (close, drop or pause a connection, restart, withhold acks, raw
frames) so that applications can test how they behave when the network misbehaves.
Production traffic goes to the hosted service.
"""

from ._config import AppConfig as AppConfig
from ._config import AppConfigError as AppConfigError
from ._config import KeyConfig as KeyConfig
from ._config import load_app_config as load_app_config
from ._server import ConnectionSnapshot as ConnectionSnapshot
from ._server import Gateway as Gateway
from ._server import serve as serve

__all__ = [
    # running it
    "serve",
    "Gateway",
    "ConnectionSnapshot",
    # the service's app keys
    "AppConfig",
    "KeyConfig",
    "load_app_config",
    "AppConfigError",
]
