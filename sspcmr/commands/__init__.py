"""The ``sspcmr`` command line, one module per command group; :func:`sspcmr.commands.main.main` dispatches.

* :mod:`~sspcmr.commands.training`: ``fit``, ``validate``, ``test``, ``predict`` (LightningCLI);
* :mod:`~sspcmr.commands.data`: ``synth``, ``prepare``, ``inspect``; :mod:`~sspcmr.commands.splits`: ``splits``;
* :mod:`~sspcmr.commands.evaluation`: ``evaluate``, ``segment``, ``compare``, ``probe``, ``export-backbone``;
* :mod:`~sspcmr.commands.study`: ``study``; :mod:`~sspcmr.commands.configs`: ``configs`` (the shipped configs);
* :mod:`~sspcmr.commands.errors`: how every command fails.

Nothing is imported here, so importing one command module never pulls in the others (nor torch).
"""
