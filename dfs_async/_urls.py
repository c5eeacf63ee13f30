"""The API's addresses: a module of its own so the command line's help can name them without
importing the client (and aiohttp)."""

DEFAULT_BASE_URL = "https://api.dataforseo.com"
SANDBOX_BASE_URL = "https://sandbox.dataforseo.com"
