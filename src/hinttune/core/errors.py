"""User-facing errors: the CLI prints these as one clear message, never as a traceback."""


class HinttuneError(Exception):
    """A problem the user can fix (bad config, bad input file, missing extra)."""


def missing_extra(package: str, extra: str) -> HinttuneError:
    return HinttuneError(
        f"the Python package {package!r} is not installed; install it with "
        f"`pip install 'hinttune[{extra}]'`"
    )
