"""Exit codes of the consumer, documented in ``--help`` and the README."""

EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected error (a bug): the traceback is in the log
EXIT_CONFIG = 2  # configuration error (bad option, unreadable config file, unreadable input)
EXIT_SERVICE = 3  # broker or schema registry unreachable, refused the credentials, unknown topic
EXIT_OUTPUT = 4  # output not writable (permissions, disk full): the batch was not committed
EXIT_NOTHING_WRITTEN = 8  # messages were consumed and every one was quarantined: a broken stream?
