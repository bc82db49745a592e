"""The ``longform`` commands, one module a command group; ``longform.cli`` assembles their parsers.

- ``common``: what every command shares (the request from flags, the provider options, one-line errors);
- ``arguments``: the parser class and the option groups several commands share;
- ``run``: ``run`` and ``resume`` (one local job end to end);
- ``inspect``: ``list`` and ``show`` (the jobs of a state directory, read from disk);
- ``serve``: the HTTP API locally;
- ``drop``: the S3 drop folder locally;
- ``remote``: ``submit``, ``status``, ``output``, ``cancel`` against a deployed or local API;
- ``batch``: a JSONL batch through the batch workflow;
- ``emulator``: the provider emulator on loopback.

Each module has ``add_parser(subparsers)``, which defines its commands and sets their handlers.
"""
