"""The Docker Engine API over aiohttp: ``app.py`` builds the application (routes with and without
``/v1.NN`` prefixes, version checks, errors), one module per resource registers its routes."""
