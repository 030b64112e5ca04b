"""The command-line layer: one module per command (``parser`` and ``main(argv)``), apart from
the library it calls. ``engine.cli`` maps the ``stintsim`` subcommands onto these modules; the
old ``python -m engine.simulate`` / ``engine.evaluate`` / ``engine.whatif`` paths still run
them. Shared options are declared once in :mod:`engine.commands.options`.
"""
