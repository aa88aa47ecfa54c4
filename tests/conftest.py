# Shared fixtures: the toy service used by the platform's own guarantee tests.
pytest_plugins = ["tests.support.toy"]
