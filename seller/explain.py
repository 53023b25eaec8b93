"""Serving: recommendations for a client, each explained in a chosen style.

    ex = Explainer.from_pretrained("models/sample")
    recs = ex.recommend("C001", k=5)                           # list[Recommendation]
    e = ex.explain("C001", recs[0].item_id, "feature")         # Explanation
    for chunk in ex.explain("C001", item, "style", stream=True): print(chunk, end="")
    es = ex.explain_many("C001", [r.item_id for r in recs], "occasion")  # parallel sequences
    for i, chunk in ex.explain_many("C001", items, "feature", stream=True): ...  # all cards live

Every card passes seller.guard before anything of it is shown: the model's text when each of its
claims checks out against the catalogue, the client's history and the day (`today`), else a
grounded sentence built from the same evidence (`Explanation.grounded`). With
`llm.candidates` = N > 1 a card whose greedy text fails decodes N - 1 sampled ones (a request of
its own, sharing the card's prompt in the KV cache) and shows the first that passes
(`Explanation.candidate`). They are decoded only for a card that needs them: a model whose
greedy text passes 98% of the time (models/sample) would otherwise spend 3 of every 4 decoded
sequences on texts nobody reads (five cards: 2.8 s on demand, 5.4 s with all four decoded
at once, benchmarks/results/app_latency*.md). So cards arrive whole, each as soon as its own
texts are read; `guard=False` streams raw text.

Serving needs no transformers backbone: the recommender's encoders and the adapter (small
torch modules) make the soft prompts, llama.cpp decodes. The history facts come first in the
layout, so `explain_many` shares the client's prefix in the KV cache across candidates.

CLI: `seller explain --username U [--password-stdin] --client C001 [--item I0035] [--style feature]
[--k 5] [--data STORE] [--model models/sample]`: signed in like the app, scoped to the account's
boutiques, and each look recorded in the activity log. The clients come from --data, else env
SELLER_DATA (as the app), else the store the model was trained on (the sample for models/sample).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from seller import settings
from seller.config import LLMConfig
from seller.data.schema import EXPLANATION_STYLES, check_style


N_CTX = 2048  # llama.cpp context of the serving model (and of training's sample generations)
# KV cells the runtime reserves for a card's alternatives beside their texts: their prompt
# (about 150 positions on the sample, shared with the card's in the cache, counted whole)
ALTERNATIVE_PROMPT_CELLS = 192

_SENTENCE_END = re.compile(r"""[.!?…]["'”’)]*(?=\s|$)""")


def whole_sentences(text: str) -> str:
    """The text without a trailing unfinished sentence (generation stopped at max tokens), so
    an associate never reads a sentence cut mid-word; a text with no complete sentence stays."""
    text = text.strip()
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends and ends[-1] < len(text) else text


@dataclass
class Explanation:
    text: str
    style: str
    gate_weights: dict[str, float]  # expert name -> weight; sums to 1, at most top_k non-zero
    cited_event_ids: list[str]  # the events the reason rests on (the adapter's, given to the LLM as facts)
    latency_s: float
    model_version: str
    grounded: bool = False  # the model's text failed a claim: a sentence built from the evidence replaced it
    failed_claims: list[str] = field(default_factory=list)  # what the model's text got wrong (ids and catalogue words)
    unchecked_claims: list[str] = field(default_factory=list)  # what the verifier could not check in the text shown
    candidate: int | None = 0  # which of the card's texts is shown: 0 the first, n the n-th alternative; None grounded

    @property
    def label(self) -> str:
        """What a reader of the card is told about its sentence ("" for the model's own)."""
        return GROUNDED_LABEL if self.grounded else ""


GROUNDED_LABEL = "Built from the client's history: the model's sentence did not pass the fact check"


@dataclass
class ExplanationStream:
    """Iterate for text chunks; `gate_weights`/`cited_event_ids` are known before the first
    chunk, `explanation` is set once the stream is exhausted."""
    _chunks: Iterator[str]
    style: str
    gate_weights: dict[str, float]
    cited_event_ids: list[str]
    model_version: str
    _t0: float
    explanation: Explanation | None = field(default=None)

    def __iter__(self) -> Iterator[str]:
        text = ""
        for chunk in self._chunks:
            text += chunk
            yield chunk
        self.explanation = Explanation(whole_sentences(text), self.style, self.gate_weights, self.cited_event_ids,
                                       time.perf_counter() - self._t0, self.model_version)


@dataclass
class CheckedStream:
    """One checked card as a stream: a single chunk (the text shown), then `explanation`."""
    _many: "ExplanationsStream"
    explanation: Explanation | None = field(default=None)

    def __iter__(self) -> Iterator[str]:
        for _, chunk in self._many:
            yield chunk
        self.explanation = self._many.explanations[0]


@dataclass
class ExplanationsStream:
    """Iterate for (candidate index, text chunk) pairs of several explanations decoded together;
    `explanations` (one per candidate, in order) is set once the stream is exhausted."""
    _chunks: Iterator[tuple[int, str]]
    _finish: Callable[[dict[int, str]], list[Explanation]]
    explanations: list[Explanation] | None = field(default=None)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        texts: dict[int, str] = {}
        for i, chunk in self._chunks:
            texts[i] = texts.get(i, "") + chunk
            yield i, chunk
        self.explanations = self._finish(texts)

    def close(self) -> None:
        """Stop early: the explanations not yet written are dropped and their sequences freed."""
        self._chunks.close()


class Explainer:
    def __init__(self, dataset, recommender, adapter, llm, data_cfg, model_version: str,
                 max_tokens: int = LLMConfig.max_target_tokens,
                 sampling=None, stop=None, item_aspects: dict[str, list[str]] | None = None,
                 guard: bool = True, candidates: int = 1, alternative_sampling=None):
        from seller.adapter.pipeline import ExplanationPipeline
        from seller.guard import CardGuard
        self.guard = CardGuard(dataset.items, dataset.events) if guard else None
        self.dataset, self.recommender, self.adapter, self.llm = dataset, recommender, adapter, llm
        self.pipe = ExplanationPipeline(dataset, recommender, adapter, llm.tokenizer, data_cfg, item_aspects)
        self.data_cfg, self.model_version, self.max_tokens = data_cfg, model_version, max_tokens
        self.sampling = sampling or LLMConfig().sampling()
        self.stop = tuple(LLMConfig().stop if stop is None else stop)
        if candidates < 1 or llm.n_seq_max < candidates:
            raise ValueError(f"candidates must be in [1, n_seq_max={llm.n_seq_max}], got {candidates}")
        self.candidates = candidates if guard else 1  # without the guard nothing picks among them
        self.alternative_sampling = alternative_sampling or LLMConfig().alternative_sampling()
        self.cards_at_once = max(1, llm.n_seq_max // self.candidates)  # cards decoded together

    @classmethod
    def from_pretrained(cls, directory: str | Path = "models/sample", dataset=None, gguf: str | None = None,
                        n_threads: int = 2, n_gpu_layers: int = 0, n_seq_max: int = 8,
                        n_ctx: int = N_CTX, weights: str = "f16", candidates: int | None = None) -> "Explainer":
        """Load the model folder (seller.bundle: dataset, the one the model was trained on
        unless given; recommender; adapter) and the GGUF (weights: "f16" serving copy or
        "as-is", see seller.llm.weights); an adapter trained for another LLM width fails here,
        naming both. n_seq_max cards decode at once and n_ctx KV cells hold them; each card's
        alternatives (config llm.candidates, or `candidates`) get sequences and cells on top."""
        from seller.bundle import ModelBundle, lora_file, read_config
        from seller.llm.runtime import SoftPromptLLM
        directory = _resolve(directory)
        cfg = read_config(directory)  # names the GGUF; the bundle reads the rest
        candidates = candidates or cfg.llm.candidates
        more = candidates - 1
        llm = SoftPromptLLM(gguf or cfg.llm.gguf or None, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
                            n_seq_max=n_seq_max * candidates,
                            n_batch=max(512, 4 * n_seq_max * candidates),  # a token + 3 guesses per sequence
                            n_ctx=n_ctx + bool(more) * n_seq_max * (
                                ALTERNATIVE_PROMPT_CELLS + more * (cfg.llm.max_target_tokens + 1)),
                            max_waiting=16 + bool(more) * n_seq_max,  # one request per card's alternatives
                            lora=lora_file(directory), weights=weights, extra_buffers=cfg.llm.extra_buffers)
        try:
            bundle = ModelBundle.from_pretrained(directory, dataset, n_embd=llm.n_embd, llm_name=f"GGUF {llm.path}")
        except Exception:
            llm.close()
            raise
        return cls(bundle.dataset, bundle.recommender, bundle.adapter, llm, cfg.data, bundle.model_version,
                   max_tokens=cfg.llm.max_target_tokens, sampling=cfg.llm.sampling(), stop=cfg.llm.stop,
                   item_aspects=bundle.item_aspects, candidates=candidates,
                   alternative_sampling=cfg.llm.alternative_sampling())

    def recommend(self, client_id: str, k: int = 5, exclude_purchased: bool = True):
        """Top-k `Recommendation(item_id, score, top_events)` from the recommender."""
        return self.recommender.recommend(client_id, k=k, exclude_purchased=exclude_purchased)

    def step(self, client_id: str, item_ids: list[str], style: str, before_ts: int | None = None,
             today: date | None = None):
        """The explanation step (seller.adapter.pipeline) for candidates of one client: soft
        prompts, gate weights, cited events and layouts; `before_ts` (unix s) hides the history
        from then on (held-out evaluation), None = the whole history."""
        import torch
        from seller.adapter.pipeline import StepRequest
        check_style(style)
        for item_id in item_ids:
            self.dataset.item(item_id)  # UnknownIdError naming the id
        with torch.no_grad():
            return self.pipe.step([StepRequest(client_id, item_id, style, before_ts, today=today)
                                   for item_id in item_ids])

    def _prepare(self, client_id: str, item_ids: list[str], style: str, today: date | None = None):
        """(layout, soft prompts, gate weights by expert name, cited event ids) per candidate."""
        st = self.step(client_id, item_ids, style, today=today)
        return [(st.layouts[b], st.output.soft_prompts[b].float().numpy(),
                 {n: round(float(w), 4) for n, w in zip(self.adapter.expert_names, st.output.gate_weights[b])},
                 st.cited[b]) for b in range(len(item_ids))]

    def explain(self, client_id: str, item_id: str, style: str = "feature", stream: bool = False,
                today: date | None = None):
        """One explanation; with stream=True an `ExplanationStream` yielding text chunks (one
        chunk, the checked text, when the guard is on)."""
        if self.guard is not None:
            many = self.explain_many(client_id, [item_id], style, stream=stream, today=today)
            return CheckedStream(many) if stream else many[0]
        t0 = time.perf_counter()
        layout, soft, gates, cited = self._prepare(client_id, [item_id], style, today)[0]
        if stream:
            chunks = self.llm.stream(layout, soft, max_tokens=self.max_tokens, sampling=self.sampling,
                                     stop=self.stop)
            return ExplanationStream(chunks, style, gates, cited, self.model_version, t0)
        text = self.llm.generate(layout, soft, max_tokens=self.max_tokens, sampling=self.sampling, stop=self.stop)
        return Explanation(whole_sentences(text), style, gates, cited, time.perf_counter() - t0, self.model_version)

    def explain_many(self, client_id: str, item_ids: list[str], style: str = "feature",
                     stream: bool = False, today: date | None = None):
        """Explanations for several candidates of one client, decoded as parallel sequences that
        share the client-history prefix (n_seq_max at a time); latency_s is the wall time of the
        batch each was in. stream=True: an `ExplanationsStream` of (index, chunk) pairs, where
        the first candidate's words come before the others are prefilled (with the guard on,
        one chunk per card: its checked text, as soon as that card is done). `today`: the day
        the cards are read (default: today, UTC); claims about time and dates are read on it."""
        item_ids = list(item_ids)
        walls, metas = {}, {}  # per candidate index: batch wall time, (gate weights, citations)
        checked: dict[int, tuple] = {}  # per candidate index: (grounded, cited ids, failed claims, shown, unchecked claims)
        prompts: dict[int, tuple] = {}  # per candidate index: (layout, soft prompts), for its alternatives

        def finish(texts: dict[int, str]) -> list[Explanation]:
            out = []
            for i in range(len(item_ids)):
                gates, cited = metas[i]
                grounded, cited, failed, chosen, unchecked = checked.get(i, (False, cited, [], 0, []))
                text = texts.get(i, "") if self.guard is not None else whole_sentences(texts.get(i, ""))
                out.append(Explanation(text, style, gates, cited, walls[i], self.model_version, grounded,
                                       failed, unchecked, chosen))
            return out

        chunks = self._decode_batches(client_id, item_ids, style, walls, metas, prompts, today)
        if self.guard is not None:
            chunks = self._checked(chunks, client_id, item_ids, style, today, metas, checked, prompts)
        results = ExplanationsStream(chunks, finish)
        if stream:
            return results
        for _ in results:
            pass
        return results.explanations

    def _decode_batches(self, client_id: str, item_ids: list[str], style: str, walls: dict, metas: dict,
                        prompts: dict, today: date | None):
        n = self.cards_at_once
        for start in range(0, len(item_ids), n):
            t0 = time.perf_counter()
            jobs = self._prepare(client_id, item_ids[start:start + n], style, today)
            for k, (layout, soft, gates, cited) in enumerate(jobs):
                metas[start + k], prompts[start + k] = (gates, cited), (layout, soft)
            first = self.llm.submit([j[0] for j in jobs], [j[1] for j in jobs], max_tokens=self.max_tokens,
                                    sampling=self.sampling, stop=self.stop)
            for k, chunk in first:
                yield start + k, chunk
            for k in range(len(jobs)):
                walls[start + k] = time.perf_counter() - t0

    def submit_alternatives(self, layouts, soft_prompts) -> list:
        """Per layout, a request decoding its candidates - 1 sampled alternatives (identical
        prompts: all but one position shared in the KV cache); None each when candidates = 1."""
        more = self.candidates - 1
        if not more:
            return [None] * len(layouts)
        return [self.llm.submit([layout] * more, [soft] * more, max_tokens=self.max_tokens,
                                sampling=self.alternative_sampling, stop=self.stop)
                for layout, soft in zip(layouts, soft_prompts)]

    @staticmethod
    def alternative_texts(request) -> list[str]:
        """The texts of a request from submit_alternatives, in sequence order (waits for them)."""
        if request is None:
            return []
        texts: dict[int, str] = {}
        for s, piece in request:
            texts[s] = texts.get(s, "") + piece
        return [whole_sentences(texts.get(s, "")) for s in range(len(request.layouts))]

    def _checked(self, chunks, client_id, item_ids, style, today, metas, checked, prompts):
        """Hold each card's raw text until its sequence ends, then yield what the guard shows
        (decoding the card's alternatives only when its first text fails)."""
        day = today or datetime.now(timezone.utc).date()
        history = self.dataset.client_history(client_id)
        texts: dict[int, str] = {}
        for i, chunk in chunks:
            if chunk:
                texts[i] = texts.get(i, "") + chunk
                continue
            cited = metas[i][1]
            shown = self.guard.shown(whole_sentences(texts.get(i, "")), item_ids[i], history, style, day,
                                     cited[0] if cited else None, self._on_demand(*prompts.pop(i)))
            failed = [f"{c.type}: {c.text!r} ({c.reason})" for c in shown.raw.failed]
            unchecked = list(dict.fromkeys(f"{c.text!r}: {c.reason}" for c in shown.checked.unchecked))
            checked[i] = (True, [shown.cited_event_id] if shown.cited_event_id else [], failed, None, unchecked) \
                if shown.grounded else (False, cited, failed, shown.chosen, unchecked)
            yield i, shown.text

    def _on_demand(self, layout, soft):
        """The card's alternatives, decoded when the guard first asks for them."""
        request = self.submit_alternatives([layout], [soft])[0]
        try:
            yield from self.alternative_texts(request)
        finally:  # read or abandoned: nothing keeps decoding
            if request is not None:
                request.cancel()

    def close(self) -> None:
        self.llm.close()


def _resolve(directory) -> Path:
    """A relative model path is looked up from the current directory, then from the repo root."""
    from seller.paths import REPO_ROOT
    p = Path(directory)
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


# -- CLI ------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", required=True, help="client id, e.g. C001")
    parser.add_argument("--item", help="explain this item instead of the top-k recommendations")
    parser.add_argument("--style", default="feature", choices=EXPLANATION_STYLES)
    parser.add_argument("--k", type=int, default=3, help="recommendations to explain")
    parser.add_argument("--data", default=None,
                        help="store dir (seller import) or CSV folder whose clients are served "
                             "(default: env SELLER_DATA, else the store the model was trained on)")
    parser.add_argument("--model", default="models/sample", help="trained model folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--username", required=True,
                        help="your account (seller users add): only your boutiques' clients, and the look is on record")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin (else asked)")
    parser.add_argument("--db", default=None, help="feedback database URL (default: SELLER_DB_URL or SELLER_DB_PATH)")


def _signed_in(args, serving_sample: bool):
    """(account, audit log) of the one signing in, as the app's form does; SignInError else."""
    import getpass
    import sys

    from seller.feedback.audit import AuditLog
    from seller.feedback.store import FeedbackStore
    from seller.feedback.users import AccountDirectory
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise ValueError("no terminal to ask for the password: pipe it in with --password-stdin")
    store = FeedbackStore(args.db)
    account = AccountDirectory(store).authenticate(args.username, password, serving_sample=serving_sample)
    return account, AuditLog(store)


def run(args) -> int:
    from seller.feedback.users import SignInError
    from seller.data.dataset import load_dataset
    from seller.scope import ClientScope, OutOfScopeError
    data = args.data or settings.data_dir()
    ex = Explainer.from_pretrained(args.model, dataset=load_dataset(data) if data else None,
                                   n_threads=args.threads)
    try:
        try:  # demo accounts sign in only on the shipped sample, as in the app
            account, audit = _signed_in(args, serving_sample=not data and ex.data_cfg.dataset == "sample")
        except SignInError as e:
            print(f"seller explain: sign-in refused: {e}", file=sys.stderr)
            return 2
        scope = ClientScope.of(ex.dataset, account)
        model = scope.guard(ex)
        try:
            scope.require(args.client)  # on record either way
        except OutOfScopeError as e:
            audit.record(scope.username, "client_refused", client_id=args.client, detail="cli")
            print(f"seller explain: {e}", file=sys.stderr)
            return 2
        audit.record(scope.username, "open_client", client_id=args.client, detail="cli")
        if args.item:
            rows = [(args.item, None)]
            explanations = [model.explain(args.client, args.item, args.style)]
        else:
            recs = model.recommend(args.client, k=args.k)
            rows = [(r.item_id, r.score) for r in recs]
            explanations = model.explain_many(args.client, [r.item_id for r in recs], args.style)
        audit.record_many(scope.username, "explanation_shown",
                          [dict(client_id=args.client, item_id=i, detail=f"{args.style} {e.model_version} cli"[:255])
                           for (i, _), e in zip(rows, explanations)])
        events = ex.pipe.events
        print(f"client {args.client}  style {args.style}  model {ex.model_version}")
        for n, ((item_id, score), e) in enumerate(zip(rows, explanations), 1):
            item = ex.dataset.item(item_id)
            head = f"{n}. {item_id}  {item.name}" + (f"  (score {score:.2f})" if score is not None else "")
            print(head)
            print(f"   {e.text}")
            if e.label:
                print(f"   {e.label} ({e.failed_claims[0] if e.failed_claims else 'no text'})")
            if e.unchecked_claims:
                print(f"   could not check: {'; '.join(e.unchecked_claims)}")
            gates = ", ".join(f"{k} {v:.2f}" for k, v in sorted(e.gate_weights.items(), key=lambda kv: -kv[1]) if v > 0)
            print(f"   experts: {gates}")
            for eid in e.cited_event_ids:
                ev = events.loc[eid]
                print(f"   cites {eid}: {ev['event_type']} {ev['item_id']} {ev['timestamp']:%Y-%m-%d}")
            print(f"   {e.latency_s:.2f} s")
    finally:
        ex.close()
    return 0
