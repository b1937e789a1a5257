"""The one exception type a user sees.

Every input the user controls (a data folder, a task name, a config, an artifact) is checked
where it is read, and a problem is raised as :class:`BebertError` carrying one sentence that
names the file or value and what is wrong with it. The command-line entry points print that
sentence and exit with status 2; anything else escaping is a bug and keeps its traceback.
"""


class BebertError(Exception):
    """A problem with the user's input, described in one sentence."""
