"""The top layer: the ``clickpipe`` command line (cli.py) and ``clickpipe up`` (launcher.py).

It may import every other package; none may import it (tests/test_layers.py).
"""
