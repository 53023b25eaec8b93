"""What a card may show (seller.guard): the model's text when every claim passes, else the
grounded sentence built from the same evidence, which passes itself."""
import pandas as pd
import pytest

from seller.data.dataset import load_sample
from seller.guard import CardGuard

DAY = pd.Timestamp("2026-12-01", tz="UTC")


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def guard(sample):
    return CardGuard(sample.items)


def test_a_text_with_a_failed_claim_is_replaced_by_a_grounded_sentence(sample, guard):
    history = sample.client_history("C001", before=DAY)
    # the ankle-boots card: an invented maker and a date no event of the piece has
    bad = ("This pair of ankle boots, made by the Aulë Le Tigre, are a variant of the iconic "
           "Ankle Boots, which were created in 14 June 2026.")
    shown = guard.shown(bad, "I0218", history, "feature", DAY, cited_event_id="e80")
    assert shown.grounded and not shown.raw.passed and shown.checked.passed
    assert shown.text != bad and shown.cited_event_id == "e80" and "Valmonde Passport Holder" in shown.text


def test_a_text_that_passes_is_shown_as_it_is(sample, guard):
    history = sample.client_history("C001", before=DAY)
    good = guard.shown("", "I0218", history, "feature", DAY, "e80").text  # a sentence that passes
    again = guard.shown(good, "I0218", history, "feature", DAY, "e80")
    assert not again.grounded and again.text == good and again.raw.passed


def test_an_empty_text_and_a_client_without_history_still_get_a_sentence(guard):
    shown = guard.shown("   ", "I0218", None, "occasion", DAY)
    assert shown.grounded and shown.checked.passed and shown.cited_event_id is None and shown.text


def test_the_first_alternative_that_passes_is_shown_and_later_ones_are_not_read(sample, guard):
    history = sample.client_history("C001", before=DAY)
    good = guard.shown("", "I0218", history, "feature", DAY, "e80").text  # a sentence that passes
    bad = "This overcoat, made by the Aulë Le Tigre, is the item."
    read = []

    def alternatives():
        for text in (bad, good, "never read"):
            read.append(text)
            yield text

    shown = guard.shown(bad, "I0218", history, "feature", DAY, "e80", alternatives())
    assert shown.text == good and shown.chosen == 2 and not shown.grounded
    assert not shown.raw.passed and shown.checked.passed and read == [bad, good]
    first = guard.shown(good, "I0218", history, "feature", DAY, "e80", alternatives())
    assert first.chosen == 0 and read == [bad, good]  # the lazy alternatives were never drawn
    none = guard.shown(bad, "I0218", history, "feature", DAY, "e80", [bad, "   "])
    assert none.grounded and none.chosen is None and none.checked.passed
