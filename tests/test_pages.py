"""Reader pages rendered once, with each reader's click tokens in their slots."""

from __future__ import annotations

import pytest

from abtest.web.pages import RenderedPages, slot


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_a_cached_page_gets_each_readers_tokens_in_its_slots(count):
    pages = RenderedPages()
    # Braces in the page are text, and a slot may appear more than once.
    link = "<a href='/c/{}'>{{{}}}</a><a href='/c/{}'>more</a>"
    template = "<p>" + "".join(link.format(slot(i), i, slot(i)) for i in range(count)) + "</p>"
    for reader in ("one", "two"):
        tokens = [f"{reader}{i}" for i in range(count)]
        links = "".join(link.format(f"{reader}{i}", i, f"{reader}{i}") for i in range(count))
        assert pages.page(("front", count), tokens, lambda: template) == f"<p>{links}</p>"
