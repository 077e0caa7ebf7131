"""The read-only web app: the watch list, a record's page, changes, findings, seeds, the outbox,
Atom feeds of changes and JSON at ``/api/…``, with ``/healthz``, ``/readyz`` and ``/metrics``.

- ``app``: ``create_app`` (the routes, the error pages, the middleware);
- ``security``: who may ask (the token off loopback) and the headers every answer carries;
- ``server``: uvicorn, in the foreground (``trialwatch serve``) or beside the daemon;
- ``pages``: what every page shares (rendering, pagination cursors, query parameters);
- ``records``, ``changes``, ``findings``, ``seeds``, ``outbox``: one module per page family,
  each with one ``…_data()`` function that the HTML page and its JSON twin both render;
- ``feeds``: the Atom feed of changes;
- ``health``: the probes and metrics, on the same server.

Nothing here writes to the store: there is no write endpoint, and no GET changes anything
(a feed never depends on what someone has looked at).
"""
