"""Where the configuration is validated: every problem names its key path.

``schema`` holds :class:`ConfigError`, the Struct base of every section's schema
and its reader, which every section parser uses (here, and the schedules, waiting
and thresholds sections next to what they configure; ``webconfig`` for
``--web.config.file``); ``settings`` assembles the whole config. This package
file imports neither, so that a section parser importing ``config.schema``
never pulls in ``settings`` and the sections it depends on.
"""
