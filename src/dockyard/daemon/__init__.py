"""``dockyard daemon``: the one process that writes the store and serves the Docker Engine API.

``config.py`` builds the typed configuration once (flags > config file > defaults), ``wiring.py``
composes the services from it, ``server.py`` runs the aiohttp server until SIGTERM/SIGINT.
"""
