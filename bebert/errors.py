"""The one exception type a user sees.

Every input the user controls (a data folder, a task name, a config, an artifact) is checked
where it is read, and a problem is raised as :class:`BebertError` carrying one sentence that
names the file or value and what is wrong with it. The command-line entry points print that
sentence and exit with status 2; anything else escaping is a bug and keeps its traceback.
"""


class BebertError(Exception):
    """A problem with the user's input, described in one sentence."""


def run_command(prog: str, func, args, interrupted: str = "interrupted") -> int:
    """Run a command-line handler: a BebertError becomes one ``prog: error:`` line and status 2."""
    import sys

    try:
        return func(args)
    except BebertError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
