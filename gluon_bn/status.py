"""The exit statuses of ``gluon-bn`` and the scripts: what each kind of failure returns."""

EXIT_USAGE = 2  # bad input: what was wrong and how to fix it, in one line
EXIT_DATA = 3  # the data set is missing or corrupt
EXIT_DIVERGED = 4  # training stopped on a non-finite loss
EXIT_WRITE = 5  # an output could not be written
EXIT_RUNS_FAILED = 6  # some runs of a study or reproduction raised; the others are kept
EXIT_INTERRUPTED = 130  # Ctrl-C
