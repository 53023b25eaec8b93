"""The llama.cpp worker on the real default GGUF: requests of several callers decode in the same
batches (continuous batching) with the texts each gets alone; a full queue says busy; an
abandoned or failing request frees its sequences and leaves the others running."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from seller.llm.layout import build_layout
from seller.llm.native import lib
from seller.llm.runtime import BusyError, SoftPromptLLM
from seller.llm.sampling import GREEDY

HISTORY = ["2024-01-03 viewed: silk scarf, navy, Maison A",
           "2024-02-11 tried on: leather loafers, black, Maison B",
           "2024-03-20 purchased: cashmere coat, camel, Maison A"]
ITEMS = ["Silk evening bag, emerald", "Wool scarf, camel", "Gold ring, 18k",
         "Leather belt, black", "Cotton shirt, white", "Linen jacket, sand"]
LONG = GREEDY.__class__(repeat_penalty=1.0, ignore_eos=True)  # greedy, exactly max_tokens


@pytest.fixture(scope="module")
def llm():
    with SoftPromptLLM(n_ctx=2048, n_threads=2, n_seq_max=6) as m:
        yield m


def _request(llm, client: int, n: int):
    """n layouts of one 'client' (its own history and soft prompts): what one page asks."""
    history = HISTORY[client % 3:] + [f"2024-04-0{client + 1} viewed: item number {client}"]
    layouts = [build_layout(llm.tokenizer, instruction="Explain by occasion.", history=history,
                            item=ITEMS[(client + k) % len(ITEMS)], n_soft=4) for k in range(n)]
    rng = np.random.default_rng(client)
    softs = [(rng.standard_normal((4, llm.n_embd)) * 0.05).astype(np.float32) for _ in range(n)]
    return layouts, softs


def _texts(pieces, n: int) -> list[str]:
    return ["".join(p for i, p in pieces if i == k) for k in range(n)]


def _all_sequences_free(llm) -> bool:
    mem = llm._ctx.memory
    return (sorted(llm._free_slots) == list(range(llm.n_seq_max))
            and all(lib().llama_memory_seq_pos_max(mem, s) == -1 for s in range(llm.n_seq_max)))


def test_a_new_request_joins_while_another_decodes(llm):
    a_layouts, a_softs = _request(llm, 0, 3)
    b_layouts, b_softs = _request(llm, 1, 2)
    solo_a = llm.generate_many(a_layouts, a_softs, max_tokens=32, sampling=LONG)
    solo_b = llm.generate_many(b_layouts, b_softs, max_tokens=32, sampling=LONG)
    a = llm.submit(a_layouts, a_softs, max_tokens=32, sampling=LONG)
    a_iter = iter(a)
    a_pieces = [next(a_iter)]  # a is admitted and decoding
    b = llm.submit(b_layouts, b_softs, max_tokens=32, sampling=LONG)
    b_pieces = list(b)
    assert a.stats is None  # b's cards were all written while a was still decoding
    a_pieces += list(a_iter)
    assert _texts(a_pieces, 3) == solo_a and _texts(b_pieces, 2) == solo_b
    assert a.stats.n_generated == (32, 32, 32) and b.stats.n_generated == (32, 32)
    assert _all_sequences_free(llm)


def test_concurrent_callers_get_their_solo_texts(llm):
    requests = [_request(llm, c, 2) for c in range(3)]
    solo = [llm.generate_many(lay, soft, max_tokens=24, sampling=GREEDY) for lay, soft in requests]
    got, start = [None] * 3, threading.Barrier(3)

    def caller(c: int) -> None:
        start.wait()
        got[c] = llm.generate_many(*requests[c], max_tokens=24, sampling=GREEDY)

    threads = [threading.Thread(target=caller, args=(c,)) for c in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # each caller gets its own texts, never another's: with random soft prompts greedy choices
    # sit on near-ties, and a decode call shared with other callers' rows can round one the other
    # way (llama.cpp picks its matmul kernel by batch size), so exact equality is not promised
    assert len({t for texts in solo for t in texts}) > 1
    assert [len(texts) for texts in got] == [len(texts) for texts in solo] and all(t for g in got for t in g)
    for c, texts in enumerate(got):
        assert all(texts != solo[d] for d in range(3) if d != c and solo[d] != solo[c]), (c, got, solo)


def test_a_full_queue_says_busy(llm):
    layouts, softs = _request(llm, 2, 6)  # takes every sequence id
    served = llm.max_waiting
    llm.max_waiting = 1
    try:
        first = llm.submit(layouts, softs, max_tokens=64, sampling=LONG)
        pieces = iter(first)
        next(pieces)  # admitted: nothing else fits beside it
        second = llm.submit(*_request(llm, 0, 1), max_tokens=8, sampling=GREEDY)  # waits
        with pytest.raises(BusyError, match="max_waiting=1"):
            llm.submit(*_request(llm, 1, 1), max_tokens=8, sampling=GREEDY)
        first.cancel()
        assert "".join(p for _, p in second)  # admitted once the sequences were given back
    finally:
        llm.max_waiting = served
    assert _all_sequences_free(llm)


def test_an_abandoned_request_is_dropped_and_frees_its_sequences(llm):
    layouts, softs = _request(llm, 1, 6)
    stream = llm.stream_many(layouts, softs, max_tokens=64, sampling=LONG)
    next(stream)
    stream.close()  # the consumer stops reading (a session that went away)
    other, other_softs = _request(llm, 0, 6)  # fits only once the abandoned one is gone
    assert all(llm.generate_many(other, other_softs, max_tokens=8, sampling=GREEDY))
    assert _all_sequences_free(llm)
    assert llm.last_run.n_generated == (8,) * 6  # the dropped request never completed


def test_a_failing_request_leaves_the_others_running(llm):
    layouts, softs = _request(llm, 0, 2)
    solo = llm.generate_many(layouts, softs, max_tokens=20, sampling=LONG)
    good = llm.submit(layouts, softs, max_tokens=20, sampling=LONG)
    pieces = iter(good)
    got = [next(pieces)]
    bad_soft = softs[0].copy()
    bad_soft[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        list(llm.submit(layouts[:1], [bad_soft], max_tokens=8))
    with pytest.raises(ValueError, match="KV cells"):  # more than the whole cache
        list(llm.submit(layouts, softs, max_tokens=1500))
    got += list(pieces)
    assert _texts(got, 2) == solo
    assert llm.generate(layouts[0], softs[0], max_tokens=20, sampling=LONG) == solo[0]
    assert _all_sequences_free(llm)
