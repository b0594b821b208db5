"""Reader pages rendered once per distinct content, click tokens filled in per request.

A reader page depends only on which headline of which story each teaser shows
(and whether its link is a counted click link); only the click tokens differ
from reader to reader.  So each worker renders a page once with a numbered
placeholder (:func:`slot`) wherever a token goes, keeps it split at the
placeholders, and per request joins the parts with the tokens.  Tokens are
URL-safe text that needs no HTML escaping.  The cache is bounded: past
``size`` pages it starts over.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence

__all__ = ["RenderedPages", "slot"]

_SLOT = re.compile("\x00([0-9]+)\x00")


def slot(index: int) -> str:
    """The placeholder for token ``index``; escaping never produces it from text."""
    return f"\x00{index}\x00"


class RenderedPages:
    def __init__(self, size: int = 512):
        self.size = size
        self._pages: dict[Hashable, list] = {}

    def page(self, key: Hashable, tokens: Sequence[str], render: Callable[[], str]) -> str:
        """The page for ``key``, calling ``render()`` for it the first time.

        The rendered text must have ``slot(i)`` wherever ``tokens[i]`` belongs.
        """
        parts = self._pages.get(key)
        if parts is None:
            # Even entries are text, odd entries the index of the token between them.
            parts = _SLOT.split(render())
            parts[1::2] = [int(index) for index in parts[1::2]]
            if len(self._pages) >= self.size:
                self._pages.clear()
            self._pages[key] = parts
        if len(parts) == 1:
            return parts[0]
        # One token: joined without a loop.
        if len(parts) == 3:
            return parts[0] + tokens[parts[1]] + parts[2]
        # One teaser (its seen token and its two links): the usual front page.
        if len(parts) == 7:
            token = tokens[parts[1]]
            if parts[3] == parts[5] == parts[1]:
                return parts[0] + token + parts[2] + token + parts[4] + token + parts[6]
        return "".join(part if i % 2 == 0 else tokens[part] for i, part in enumerate(parts))
