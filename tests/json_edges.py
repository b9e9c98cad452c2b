"""What the tests of connector/json_codec.py's two writers share (tests/clients/test_clients_http_dumps_json.py
for request bodies, tests/store/test_store_json_dumps.py for stored rows): each fast writer is compared with
the writer it replaced, on the same edge values and on any document."""

from __future__ import annotations

import enum

from hypothesis import strategies as st


def outcome(write, value):
    """What ``write(value)`` gives: its text, or the type and wording of the error it raises."""
    try:
        return write(value)
    except Exception as error:  # noqa: BLE001 - the error itself is what is compared
        return (type(error), str(error))


class Colour(enum.Enum):
    RED = 1.5


class Level(enum.IntEnum):
    HIGH = 3


any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)


def documents(leaves: st.SearchStrategy) -> st.SearchStrategy:
    """Documents of ``leaves`` nested in lists, tuples and dicts (keyed by text, or by what JSON has no key for)."""
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
        | st.dictionaries(any_text, children, max_size=4)
        | st.dictionaries(st.integers() | st.booleans() | st.none(), children, max_size=2),
        max_leaves=20,
    )
