"""The proxy core: the WSGI app and its chain runner, the Exchange, the upstream client and
its pools, the request and header rules, and the gateway's own error answers."""
