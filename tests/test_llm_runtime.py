"""The llama.cpp runtime on the real default GGUF: streaming, parallel sequences, sampling,
stop conditions and bad input."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from seller.llm.layout import build_layout
from seller.llm.runtime import SoftPromptLLM, draft
from seller.llm.sampling import GREEDY, SamplingParams

HISTORY = ["2024-01-03 viewed: silk scarf, navy, Maison A",
           "2024-02-11 tried on: leather loafers, black, Maison B",
           "2024-03-20 purchased: cashmere coat, camel, Maison A"]
ITEMS = ["Silk evening bag, emerald", "Wool scarf, camel", "Gold ring, 18k",
         "Leather belt, black", "Cotton shirt, white"]


@pytest.fixture(scope="module")
def llm():
    with SoftPromptLLM(n_ctx=1024, n_threads=1, n_seq_max=5) as m:
        yield m


def _layout(llm, item=ITEMS[0], history=HISTORY, n_soft=4):
    return build_layout(llm.tokenizer, instruction="Explain by occasion.", history=history,
                        item=item, n_soft=n_soft)


def _soft(llm, n=4, seed=0, scale=0.05):
    return (np.random.default_rng(seed).standard_normal((n, llm.n_embd)) * scale).astype(np.float32)


def test_stream_equals_generate(llm):
    lay, soft = _layout(llm), _soft(llm)
    pieces = list(llm.stream(lay, soft, max_tokens=24, sampling=GREEDY))
    assert len(pieces) > 1 and all(pieces)
    assert "".join(pieces) == llm.generate(lay, soft, max_tokens=24, sampling=GREEDY)


def test_parallel_equals_sequential_greedy(llm):
    layouts = [_layout(llm, item=i) for i in ITEMS]
    softs = [_soft(llm, seed=k) for k in range(len(ITEMS))]
    many = llm.generate_many(layouts, softs, max_tokens=20, sampling=GREEDY)
    one_by_one = [llm.generate(l, s, max_tokens=20, sampling=GREEDY)
                  for l, s in zip(layouts, softs)]
    assert many == one_by_one
    assert len(set(many)) > 1  # different items and soft prompts really change the text
    pieces = list(llm.stream_many(layouts, softs, max_tokens=20, sampling=GREEDY))
    assert pieces[0][0] == 0  # the first card's words come first
    assert {i for i, _ in pieces} == set(range(len(ITEMS)))
    assert ["".join(p for i, p in pieces if i == k) for k in range(len(ITEMS))] == many


def test_kv_prefix_is_reused_across_calls_without_changing_text(llm):
    a, b = _layout(llm, item=ITEMS[0]), _layout(llm, item=ITEMS[1], history=HISTORY[1:])
    soft = _soft(llm)
    text_b = llm.generate(b, soft, max_tokens=16, sampling=GREEDY)
    text_a = llm.generate(a, soft, max_tokens=16, sampling=GREEDY)
    assert 0 < llm.last_run.n_reused < a.n_positions - 1  # the chat prefix, not b's history
    assert llm.generate(a, soft, max_tokens=16, sampling=GREEDY) == text_a
    assert llm.last_run.n_reused == a.n_positions - 1  # all but the last position kept
    many = llm.generate_many([a, a], [soft, soft], max_tokens=16, sampling=GREEDY)
    assert many == [text_a, text_a] and llm.last_run.n_reused == llm.last_run.n_shared
    assert llm.generate(b, soft, max_tokens=16, sampling=GREEDY) == text_b
    llm.last_logits(a, soft)  # decodes a target-free prompt from scratch: nothing is assumed after
    assert llm.generate(a, soft, max_tokens=16, sampling=GREEDY) == text_a
    assert llm.last_run.n_reused == 0


def test_soft_prompts_change_the_output(llm):
    lay = _layout(llm)
    a = llm.last_logits(lay, _soft(llm, seed=1, scale=0.1))
    b = llm.last_logits(lay, _soft(llm, seed=2, scale=0.1))
    assert not np.allclose(a, b)


def test_seeds_make_sampling_repeatable(llm):
    lay, soft = _layout(llm), _soft(llm)
    hot = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7)
    a = llm.generate(lay, soft, max_tokens=12, sampling=hot)
    assert a == llm.generate(lay, soft, max_tokens=12, sampling=hot)
    others = {llm.generate(lay, soft, max_tokens=12, sampling=SamplingParams(
        temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=s)) for s in range(3)}
    assert len(others) > 1  # the seed is actually used


def test_max_tokens_and_stop_strings(llm):
    lay, soft = _layout(llm), _soft(llm)
    full = llm.generate(lay, soft, max_tokens=24, sampling=GREEDY)
    three = list(llm.stream(lay, soft, max_tokens=3, sampling=GREEDY))
    assert 1 <= len(three) <= 3 and full.startswith("".join(three))  # one piece per token
    stop = full.strip().split()[2]  # a word from the middle of the greedy answer
    cut = llm.generate(lay, soft, max_tokens=24, sampling=GREEDY, stop=[stop])
    assert cut == full[: full.index(stop)]
    streamed = "".join(llm.stream(lay, soft, max_tokens=24, sampling=GREEDY, stop=[stop]))
    assert streamed == cut


def test_bad_soft_prompts_rejected_before_decoding(llm):
    lay = _layout(llm)
    with pytest.raises(ValueError, match=r"shape \(4, 100\).*\(4, 576\)"):
        llm.generate(lay, np.zeros((4, 100), np.float32))
    bad = _soft(llm)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        llm.generate(lay, bad)
    with pytest.raises(ValueError, match="no soft prompts"):
        llm.generate(lay, None)
    with pytest.raises(ValueError, match="n_seq_max=5"):
        llm.generate_many([lay] * 6, [_soft(llm)] * 6)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)


def test_too_long_prompt_drops_oldest_history(caplog):
    history = [f"2023-{m % 12 + 1:02d}-01 viewed: item I{m:04d}, cashmere, navy, Maison A"
               for m in range(20)]  # about 400 positions
    with SoftPromptLLM(n_ctx=256, n_threads=1, n_seq_max=1) as small:
        lay = _layout(small, history=history)
        assert lay.n_positions > small.n_ctx
        with caplog.at_level(logging.WARNING):
            text = small.generate(lay, _soft(small), max_tokens=8, sampling=GREEDY)
        assert text and "oldest history facts" in caplog.text
        assert small.last_run.n_prompt[0] + 8 <= small.n_ctx


def test_close_is_idempotent():
    m = SoftPromptLLM(n_ctx=64, n_threads=1, n_seq_max=1)
    m.close()
    m.close()


def test_draft_guesses_what_followed_the_longest_earlier_ngram():
    assert draft([1, 2, 3, 4, 5, 9, 2, 3], 2) == [4, 5]
    assert draft([1, 2, 3, 4, 5, 9, 2, 3], 0) == []
    assert draft([1, 2, 3, 4], 3) == []  # nothing repeats
    # "7 8 9" (followed by 1) beats the later, shorter "8 9" (followed by 2)
    assert draft([7, 8, 9, 1, 0, 8, 9, 2, 7, 8, 9], 1) == [1]
    # the latest occurrence of the n-gram wins
    assert draft([5, 6, 1, 5, 6, 2, 5, 6], 1) == [2]
    # a soft-prompt position (None) ends a guess and never matches
    assert draft([5, 6, 7, None, 5, 6], 3) == [7]
    assert draft([None, None, 4, None, None], 2) == []


def test_guesses_change_the_decode_calls_not_the_text(llm):
    """Prompt lookup is exact under greedy sampling (with the default repeat penalty): the
    same texts come out with and without guesses, in fewer decode calls when the model copies
    from its prompt (here: history lines it repeats)."""
    layouts = [build_layout(llm.tokenizer, instruction="Repeat the client history word for word.",
                            history=HISTORY, item=i, n_soft=0) for i in ITEMS[:3]]
    served = llm.draft_tokens
    runs = {}
    try:
        for drafts in (0, 3):
            llm.draft_tokens = drafts
            texts = llm.generate_many(layouts, None, max_tokens=40)
            runs[drafts] = (texts, llm.last_run.n_steps, llm.last_run.n_generated)
            streamed = list(llm.stream_many(layouts, None, max_tokens=40))
            assert ["".join(p for i, p in streamed if i == k) for k in range(3)] == texts
    finally:
        llm.draft_tokens = served
    (plain, plain_steps, plain_n), (guessed, guessed_steps, guessed_n) = runs[0], runs[3]
    assert guessed == plain and guessed_n == plain_n
    # one token per call (the first comes from the prefill; a capped one is never decoded)...
    assert max(plain_n) > 10 and plain_steps in (max(plain_n) - 1, max(plain_n))
    assert guessed_steps < 0.8 * plain_steps  # ...and several per call with guesses
    sampled = SamplingParams(temperature=0.8)  # guesses are for greedy only
    llm.generate_many(layouts, None, max_tokens=12, sampling=sampled)
    assert llm.last_run.n_steps in (max(llm.last_run.n_generated) - 1, max(llm.last_run.n_generated))


def test_draft_tokens_must_fit_the_batch():
    with pytest.raises(ValueError, match="draft_tokens"):
        SoftPromptLLM(n_ctx=256, n_threads=1, n_seq_max=4, n_batch=16, draft_tokens=4)


def test_a_sequence_borrows_all_it_shares_with_the_first(llm):
    """Cards that cite the same event as the first card reuse its cells beyond the prefix all
    cards share; the text is the one each layout gets alone."""
    layouts = [_layout(llm, item=ITEMS[0]), _layout(llm, item=ITEMS[1]),
               _layout(llm, item=ITEMS[2], history=HISTORY[:2])]
    softs = [_soft(llm, seed=k) for k in range(3)]
    many = llm.generate_many(layouts, softs, max_tokens=16, sampling=GREEDY)
    run = llm.last_run
    alone = [llm.generate(l, s, max_tokens=16, sampling=GREEDY) for l, s in zip(layouts, softs)]
    assert many == alone
    keys = [list(_seq_keys(l)) for l in layouts]
    common01 = next(i for i, (a, b) in enumerate(zip(keys[0], keys[1])) if a != b)
    assert common01 > run.n_shared  # layout 1 shares the whole history with layout 0, layout 2 does not
    assert run.n_own[1] == run.n_prompt[1] - common01
    assert run.n_own[2] == run.n_prompt[2] - run.n_shared


def _seq_keys(layout):
    """Token ids; a soft-prompt position never equals another layout's (other vectors)."""
    for seg in layout.segments:
        yield from (seg.ids if seg.kind != "soft" else [object() for _ in range(seg.n_soft)])


def _numbers(text: str) -> set[str]:
    import re
    return set(re.findall(r"\d+", text))


def test_number_guard_allows_only_the_prompts_numbers_and_finishes_them(llm):
    from seller.llm.sampling import NumberGuard

    guard = NumberGuard(llm.tokenizer)
    digit = {d: llm.tokenizer.encode(d)[-1] for d in "0123456789"}
    numbers = guard.numbers(llm.tokenizer.encode("tried on 5 September 2025") + [None]
                            + llm.tokenizer.encode("12"))
    assert numbers == {"5", "2025", "12"}
    ok, others = guard.allowed(numbers, [])  # a number may start with 5, 2 or 1
    assert sorted(ok.tolist()) == sorted(digit[d] for d in "125") and others
    ok, others = guard.allowed(numbers, [digit["2"], digit["0"]])  # "20" of "2025": go on
    assert ok.tolist() == [digit["2"]] and not others
    ok, others = guard.allowed(numbers, [digit["1"]])  # "1" only begins "12"
    assert ok.tolist() == [digit["2"]] and not others
    ok, others = guard.allowed(numbers, [digit["5"]])  # "5" is whole: no "51", anything else
    assert ok.size == 0 and others
    logits = np.zeros(llm.tokenizer.n_vocab, dtype=np.float32)
    guard.restrict(logits, numbers, [digit["2"], digit["0"]])
    assert np.isfinite(logits).sum() == 1 and np.isfinite(logits[digit["2"]])


def _mid_sentence_capitals(text: str) -> list[str]:
    import re
    return [m.group() for m in re.finditer(r"[A-Z][\w\u00c0-\u024f]*", text)
            if text[:m.start()].rstrip() and text[:m.start()].rstrip()[-1] not in ".!?"]


def test_name_guard_follows_the_prompts_spelling(llm):
    from seller.llm.sampling import NameGuard

    tok = llm.tokenizer
    guard = NameGuard(tok)
    prompt = tok.encode("Related to the item: 7 April 2026, viewed Calisse Pearl Earrings (Hallorand)") + [None] \
        + tok.encode("Item: Galatée Twilly")
    prepared = guard.prepare(prompt)
    assert {b"Calisse", b"Hallorand", b"Galat\xc3\xa9e", b"April", b"Item"} <= prepared[0]

    def blocked(text):  # the prefixes of `text` whose last token the guard forbids
        ids, out = tok.encode(text), []
        for j in range(len(ids)):
            logits = np.zeros(tok.n_vocab, dtype=np.float32)
            guard.restrict(logits, prepared, ids[:j])
            if not np.isfinite(logits[ids[j]]):
                out.append(tok.decode(ids[: j + 1]))
        return out

    assert blocked("This twilly picks up the Calisse Pearl Earrings the client viewed on 7 April 2026.") == []
    assert blocked("Like the Galatée Twilly, by Hallorand. Lovely: it is.") == []  # accents, a new sentence
    assert blocked("This twilly matches the Calise Pearl Earrings.")[0].endswith("Calise")  # misspelt
    assert blocked("This twilly is by the Aulë Le Tigre")  # invented: no prompt word begins so
    assert blocked("Magnifique twilly")  == []  # a sentence's first word is its opening, not a name


def test_names_from_prompt_keeps_invented_names_out_of_the_text(llm):
    layouts = [build_layout(llm.tokenizer, instruction="Describe the item for a client in one sentence.",
                            history=[], item=item, n_soft=0)
               for item in ["Lune Tote in Black Calfskin, Aubrelle handbags", "Sablon Silk Shawl, Castelmoire"]]
    prompt_words = [{"Lune", "Tote", "Black", "Calfskin", "Aubrelle"}, {"Sablon", "Silk", "Shawl", "Castelmoire"}]
    free = llm.generate_many(layouts, None, max_tokens=48)
    assert any(set(_mid_sentence_capitals(t)) - allowed for t, allowed in zip(free, prompt_words)), free
    guarded = SamplingParams(names_from_prompt=True)
    texts = llm.generate_many(layouts, None, max_tokens=48, sampling=guarded)
    for text, allowed in zip(texts, prompt_words):
        assert set(_mid_sentence_capitals(text)) <= allowed | {"Describe", "You", "Explain", "Item", "Client"}, text
    assert any(_mid_sentence_capitals(t) for t in texts), texts  # the prompt's names are still written
    assert [llm.generate(lay, None, max_tokens=48, sampling=guarded) for lay in layouts] == texts


def test_numbers_from_prompt_keeps_invented_numbers_out_of_the_text(llm):
    # the model adds a clock time ("19:30:47") and a decade of its own to these prompts
    layouts = [build_layout(llm.tokenizer, instruction=instruction, history=[], item=item, n_soft=0)
               for instruction, item in [
                   ("Write the date of the item's launch.", "Lune Tote, bought 5 September 2025"),
                   ("In which year did the first moon landing happen? Answer with the year.",
                    "Apollo 11")]]
    prompt_numbers = [{"5", "2025"}, {"11"}]
    free = llm.generate_many(layouts, None, max_tokens=40)  # serving's default sampling
    assert any(_numbers(t) - allowed for t, allowed in zip(free, prompt_numbers)), free
    guarded = SamplingParams(numbers_from_prompt=True)
    texts = llm.generate_many(layouts, None, max_tokens=40, sampling=guarded)
    for text, allowed in zip(texts, prompt_numbers):
        assert _numbers(text) <= allowed, text
    assert any(_numbers(t) for t in texts)  # numbers the prompt holds are still written
    # one at a time, and without guesses, the constrained texts are the same
    assert [llm.generate(lay, None, max_tokens=40, sampling=guarded) for lay in layouts] == texts
    plain = SoftPromptLLM(llm.path, n_threads=2, draft_tokens=0)
    try:
        assert plain.generate_many(layouts, None, max_tokens=40, sampling=guarded) == texts
    finally:
        plain.close()
