"""``kgsf demo FOLDER``: a web app (Gradio) to talk to a trained KGSF folder.

Panels: **chat** (each reply with the items it names), **recommendations** (the top ``k`` with
their scores, the recommender's attention over the context words and entities as bars, the
DBpedia path of each item drawn as a small graph), **inspect** (each seeker message's entity
links: text span -> KG node and its type; the rejections detected; where the item slot fired;
the decoding used), **controls** (decoding: the folder's default, greedy, beam, sampling with a
seed, the paper's; ``k``; negation; the proximity weight), **export / import** of a conversation
as JSON, and **rating** of each reply (up / down and a comment) appended to a JSONL file.

The app is a thin layer over two plain-Python objects, tested and benchmarked without a browser:

* :class:`DemoCore`: one :class:`~modeling_kgsf.pipeline_kgsf.ConversationalRecommender`
  loaded once and shared by every browser session, plus the ratings file;
* :class:`DemoSession`: one conversation (turns, one record per reply, settings), kept in each
  browser session's ``gr.State`` and holding nothing but data.

Everything shown is escaped text: what users type is never rendered as HTML or run as a script.
Gradio is imported only by :func:`build_demo` (``pip install 'kgsf[demo]'``).
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch

from . import preferences_kgsf as prefs
from .generation_kgsf import PAPER_DECODING, decoding_summary
from .pipeline_kgsf import ConversationalRecommender, ConversationError, normalize_turns

DECODINGS = ("default", "greedy", "beam", "sampling", "paper")
EXPORT_FORMAT, EXPORT_VERSION = "kgsf-demo-conversation", 1
MAX_MESSAGE_CHARS = 2000  # longer messages are cut (the context keeps the last 256 tokens anyway)
MAX_IMPORT_BYTES = 2_000_000
MAX_TURNS = 200  # a session (or an imported conversation) holds at most this many turns
INSTALL_HINT = "the demo needs gradio: pip install 'kgsf[demo]'"
_ITEM_TOKEN = re.compile(r"^@([A-Za-z0-9_]+)$")
#: A non-item node's type, from the relation that joins it to films (the first found in this order).
_TYPE_OF_RELATION = (("starring", "actor"), ("director", "director"), ("writer", "writer"), ("genre", "genre"),
                     ("subject", "subject"), ("musicComposer", "composer"), ("producer", "producer"),
                     ("based_on", "source work"), ("series", "series"), ("distributor", "distributor"),
                     ("country", "country"), ("language", "language"))


@dataclass
class DemoSettings:
    """What the controls set; :meth:`generate_kwargs` turns the decoding into ``generate`` arguments."""

    decoding: str = "default"  # one of DECODINGS
    num_beams: int = 4  # beam decoding
    seed: int = 0  # sampling decoding
    top_p: float = 0.9  # sampling decoding
    k: int = 5
    negation: bool = True
    proximity_weight: float = prefs.DEFAULT_PROXIMITY_WEIGHT
    max_new_tokens: int = 20

    @classmethod
    def from_dict(cls, values: dict | None) -> "DemoSettings":
        """Settings from a dict (unknown keys ignored), values checked and clipped to their ranges."""
        known = {f.name for f in fields(cls)}
        settings = cls(**{key: value for key, value in (values or {}).items() if key in known and value is not None})
        if settings.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {settings.decoding!r}")
        settings.num_beams = min(max(int(settings.num_beams), 2), 8)
        settings.seed = int(settings.seed)
        settings.top_p = min(max(float(settings.top_p), 0.05), 1.0)
        settings.k = min(max(int(settings.k), 1), 20)
        settings.negation = bool(settings.negation)
        weight = float(settings.proximity_weight)
        settings.proximity_weight = min(max(weight, 0.0), 50.0) if math.isfinite(weight) else prefs.DEFAULT_PROXIMITY_WEIGHT
        settings.max_new_tokens = min(max(int(settings.max_new_tokens), 1), 60)
        return settings

    def generate_kwargs(self) -> dict:
        if self.decoding == "paper":
            return dict(PAPER_DECODING)
        if self.decoding == "greedy":
            return {"num_beams": 1, "do_sample": False}
        if self.decoding == "beam":
            return {"num_beams": self.num_beams, "do_sample": False}
        if self.decoding == "sampling":
            return {"num_beams": 1, "do_sample": True, "top_p": self.top_p}
        return {}  # the folder's generation_config


@dataclass
class DemoSession:
    """One browser session's conversation: ``turns`` (``{"role", "text"}``, seeker first) and one
    record per reply (what :meth:`DemoCore.send` returns). Plain data: deep-copied, exported as JSON."""

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    settings: DemoSettings = field(default_factory=DemoSettings)


class DemoCore:
    """The shared half of the demo: the model (loaded once), naming, the ratings file."""

    def __init__(self, crs: ConversationalRecommender, ratings_file: str | os.PathLike | None = None):
        self.crs = crs
        self.folder = crs.folder or ""
        self.ratings_file = Path(ratings_file) if ratings_file else None
        self._ratings_lock = threading.Lock()
        self._sampling_lock = threading.Lock()  # torch's global generator: one seeded sampling at a time
        self._node_types: dict[int, str] = {}

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, ratings_file: str | os.PathLike | None = None) -> "DemoCore":
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        return cls(ConversationalRecommender.from_pretrained(folder), ratings_file)

    # ------------------------------------------------------------------ naming
    def describe(self) -> dict:
        """Folder, item and entity counts, the folder's generation defaults."""
        entities = self.crs.resources.entities
        return {"folder": self.folder, "items": len(entities.item_entity_ids), "entities": entities.num_entities,
                "relations": len(self.crs.resources.relation_names), "generation": decoding_summary(self.crs.model.generation_config)}

    def node_type(self, entity_id: int) -> str:
        """``film`` for an item (``item`` outside ReDial), else the role its relations to items give it
        (actor, director, genre...), else ``entity``."""
        if entity_id in self._node_types:
            return self._node_types[entity_id]
        crs = self.crs
        if entity_id in crs.item_index_of_entity:
            kind = "film" if crs.resources.entities.movie_id_to_title else "item"
        else:
            finder = crs.path_finder
            kind = "entity"
            if 0 <= entity_id < finder.num_nodes:
                start, end = finder.indptr[entity_id], finder.indptr[entity_id + 1]
                names = {finder.relation_names[int(t)] for t, n in zip(finder.types[start:end], finder.neighbors[start:end])
                         if int(n) in crs.item_index_of_entity}
                kind = next((label for relation, label in _TYPE_OF_RELATION if relation in names), "entity")
        self._node_types[entity_id] = kind
        return kind

    def links(self, text: str) -> dict:
        """A seeker message's entity links (span -> KG node and type), its unknown ``@id`` tokens."""
        processor = self.crs.processor
        tokens = processor.tokenizer.tokenize(text)
        entities = processor.entities
        links = []
        for mention in processor.linker.link(tokens):
            uri = entities.entity_to_uri[mention.entity_id] if 0 <= mention.entity_id < entities.num_entities else ""
            links.append({"span": mention.surface, "tokens": list(mention.span), "entity_id": mention.entity_id,
                          "node": self.crs.entity_name(mention.entity_id), "uri": uri.strip("<>"), "type": self.node_type(mention.entity_id),
                          "matched_by": mention.kind, "score": mention.score})
        unknown = [token for token in tokens if (m := _ITEM_TOKEN.match(token)) and processor.linker.movie_entity(m.group(1)) is None]
        return {"links": links, "unknown_item_ids": unknown}

    # ------------------------------------------------------------------ conversation
    def send(self, session: DemoSession, text: str, settings: DemoSettings | dict | None = None) -> dict:
        """Add the seeker's ``text`` to ``session``, answer it; the new record (also appended to
        ``session.records``). Raises ``ConversationError`` (session unchanged) on a message without words."""
        settings = settings if isinstance(settings, DemoSettings) else DemoSettings.from_dict(settings or asdict(session.settings))
        text = text if isinstance(text, str) else ""
        truncated = len(text) > MAX_MESSAGE_CHARS
        text = text[:MAX_MESSAGE_CHARS].strip()
        if not text:
            raise ConversationError("empty message: type something")
        if len(session.turns) + 2 > MAX_TURNS:
            raise ConversationError(f"the conversation is at its {MAX_TURNS}-turn limit: start a new one")
        turns = [*session.turns, {"role": "seeker", "text": text}]
        started = time.perf_counter()
        ranking = {"negation": settings.negation, "proximity_weight": settings.proximity_weight}
        recommendations = self.crs.recommend(turns, k=settings.k, **ranking)  # ConversationError: no words
        kwargs = settings.generate_kwargs()
        if settings.decoding == "sampling":
            with self._sampling_lock, torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                reply = self.crs.respond_with_items(turns, max_new_tokens=settings.max_new_tokens, k=settings.k, **ranking, **kwargs)
        else:
            reply = self.crs.respond_with_items(turns, max_new_tokens=settings.max_new_tokens, k=settings.k, **ranking, **kwargs)
        seconds = time.perf_counter() - started
        rejected, rejected_words = prefs.rejected_in_turns(normalize_turns(turns), self.crs.processor.tokenizer, self.crs.processor.linker,
                                                           concept_id=self.crs.processor.concept_id) if settings.negation else (set(), set())
        decoding = {**decoding_summary(self.crs.model.generation_config), **kwargs}
        named = {item.entity_id: item for item in reply.items}
        movie_entity = self.crs.resources.entities.movie_id_to_entity
        slots = [{"position": position, "token": token, "item": named[entity].title, "rank": named[entity].rank}
                 for position, token in enumerate(reply.tokens)
                 if (m := _ITEM_TOKEN.match(token)) and (entity := movie_entity.get(m.group(1))) in named]
        record = {
            "index": len(session.records),
            "seeker": text,
            "reply": reply.text,
            "reply_tokens": reply.tokens,
            "items": [_item_dict(item) for item in reply.items],
            "recommendations": [_item_dict(r) for r in recommendations],
            "explanation": _explanation_dict(recommendations[0]) if recommendations else None,
            "inspect": {
                **self.links(text),
                "truncated": truncated,
                "rejected": [{"entity_id": e, "node": self.crs.entity_name(e)} for e in sorted(rejected)],
                "rejected_words": sorted(rejected_words),
                "item_slots": slots,
                "item_slots_on": bool(decoding.get("item_slots")),
                "decoding": {"name": settings.decoding, **({"seed": settings.seed} if settings.decoding == "sampling" else {}), **decoding},
            },
            "settings": asdict(settings),
            "seconds": round(seconds, 4),
        }
        session.turns = [*turns, {"role": "recommender", "text": reply.text}]
        session.records.append(record)
        session.settings = settings
        return record

    def export(self, session: DemoSession) -> dict:
        """The conversation as a JSON-able dict: turns, the records (recommendations, inspect), settings."""
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "model": self.folder, "session_id": session.session_id,
                "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"), "settings": asdict(session.settings),
                "turns": list(session.turns), "replies": list(session.records)}

    def load(self, data: dict | str | bytes) -> DemoSession:
        """A new session from :meth:`export`'s dict (or its JSON text), to continue the conversation.
        ``ValueError`` with a one-line reason when it is not such a file."""
        if isinstance(data, (str, bytes)):
            if len(data) > MAX_IMPORT_BYTES:
                raise ValueError(f"the file is over {MAX_IMPORT_BYTES} bytes")
            try:
                data = json.loads(data)
            except json.JSONDecodeError as error:
                raise ValueError(f"not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not a conversation exported by the demo (expected \"format\": \"{EXPORT_FORMAT}\")")
        turns = data.get("turns")
        if not isinstance(turns, list) or len(turns) > MAX_TURNS:
            raise ValueError(f"\"turns\" must be a list of at most {MAX_TURNS} turns")
        try:
            pairs = normalize_turns(turns) if turns else []
        except ConversationError as error:
            raise ValueError(str(error)) from None
        records = [r for r in data.get("replies") or [] if isinstance(r, dict)]
        return DemoSession(turns=[{"role": role, "text": text} for role, text in pairs], records=records,
                           settings=DemoSettings.from_dict(data.get("settings") if isinstance(data.get("settings"), dict) else None))

    def rate(self, session: DemoSession, reply_index: int, up: bool, comment: str = "") -> dict:
        """Append a rating of reply ``reply_index`` (0-based, in ``session.records``) to the ratings
        file (one JSON object a line: the reply, its context, the settings); the row written."""
        if self.ratings_file is None:
            raise ValueError("no ratings file: start the demo with --ratings FILE")
        if not session.records:
            raise ValueError("no reply to rate yet")
        if not 0 <= reply_index < len(session.records):
            raise ValueError(f"no reply {reply_index + 1}: this conversation has {len(session.records)}")
        record = session.records[reply_index]
        position = _turn_of_record(session, reply_index)
        row = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": self.folder,
               "session_id": session.session_id, "reply_index": reply_index, "rating": "up" if up else "down",
               "comment": (comment or "").strip()[:2000], "reply": record.get("reply"),
               "items": [item.get("title") for item in record.get("items", [])],
               "context": session.turns[:position] if position is not None else [], "settings": record.get("settings")}
        with self._ratings_lock:
            self.ratings_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.ratings_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        record["rating"] = row["rating"]
        return row


def _turn_of_record(session: DemoSession, reply_index: int) -> int | None:
    """Position in ``session.turns`` of the recommender turn of record ``reply_index``."""
    seen = -1
    for position, turn in enumerate(session.turns):
        if turn["role"] == "recommender":
            seen += 1
            if seen == reply_index:
                return position
    return None


def _item_dict(recommendation) -> dict:
    path = recommendation.explanation.path if recommendation.explanation else None
    return {"rank": recommendation.rank, "title": recommendation.title, "movie_id": recommendation.movie_id,
            "entity_id": recommendation.entity_id, "score": recommendation.score,
            "path": None if path is None else {"names": path.names, "relations": path.relations, "entity_ids": path.entity_ids, "text": path.text}}


def _explanation_dict(recommendation) -> dict:
    explanation = recommendation.explanation
    if explanation is None:
        return {"words": [], "entities": []}
    return {"words": [{"word": w.word, "weight": w.weight} for w in explanation.words],
            "entities": [{"name": e.name, "weight": e.weight} for e in explanation.entities]}


# ------------------------------------------------------------------------------------------------
# Rendering: every string goes through html.escape
# ------------------------------------------------------------------------------------------------
def _e(value) -> str:
    return html.escape(str(value), quote=True)


def chat_messages(session: DemoSession) -> list[dict]:
    """The Chatbot value: one message per turn, each reply followed by the items it names; HTML-escaped
    (the Chatbot renders HTML, so ``<script>`` typed by a user is shown as these characters)."""
    messages, reply_index = [], 0
    for turn in session.turns:
        if turn["role"] == "seeker":
            messages.append({"role": "user", "content": _e(turn["text"])})
            continue
        content = turn["text"]
        record = session.records[reply_index] if reply_index < len(session.records) else None
        if record and record.get("items"):
            content += "\n[names: " + " · ".join(f"{item['title']} (#{item['rank']})" for item in record["items"]) + "]"
        messages.append({"role": "assistant", "content": _e(content)})
        reply_index += 1
    return messages


def path_svg(path: dict | None) -> str:
    """A KG path (``{"names", "relations"}``) as a small SVG graph: nodes left to right, relations on the edges."""
    if not path:
        return '<span class="kgsf-nopath">no path within the hop limit</span>'
    names, relations = path["names"], path["relations"]
    step, width_node, height = 190, 150, 64
    width = step * (len(names) - 1) + width_node + 10
    parts = [f'<svg class="kgsf-path" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for index, relation in enumerate(relations):
        x1, x2 = 5 + index * step + width_node, 5 + (index + 1) * step
        parts.append(f'<line x1="{x1}" y1="42" x2="{x2}" y2="42" stroke="#888" stroke-width="1.5"/>')
        parts.append(f'<text x="{(x1 + x2) / 2}" y="34" font-size="11" text-anchor="middle" fill="#555">{_e(relation or "related")}</text>')
    for index, name in enumerate(names):
        x = 5 + index * step
        fill = "#fde9c9" if index == len(names) - 1 else "#dbe8fb"
        label = name if len(name) <= 22 else name[:21] + "…"
        parts.append(f'<rect x="{x}" y="28" rx="8" width="{width_node}" height="28" fill="{fill}" stroke="#667"/>'
                     f'<title>{_e(name)}</title><text x="{x + width_node / 2}" y="46" font-size="12" text-anchor="middle">{_e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bars(rows: list[tuple[str, float]], color: str) -> str:
    if not rows:
        return '<div class="kgsf-empty">none</div>'
    top = max(weight for _, weight in rows) or 1.0
    return "".join(f'<div class="kgsf-bar"><span class="kgsf-bar-label">{_e(label)}</span>'
                   f'<span style="display:inline-block;height:10px;width:{max(2, int(160 * weight / top))}px;background:{color}"></span>'
                   f' <span class="kgsf-bar-value">{weight:.2f}</span></div>' for label, weight in rows)


def recommendations_html(record: dict | None) -> str:
    """The recommendations panel of a record: top-k with scores, attention bars, the path of each item."""
    if not record:
        return '<div id="kgsf-recs" class="kgsf-empty">Recommendations appear after your first message.</div>'
    rows = []
    for item in record["recommendations"]:
        rows.append(f'<tr class="kgsf-rec"><td>{item["rank"]}</td><td class="kgsf-title">{_e(item["title"])}</td>'
                    f'<td>{item["score"]:.4f}</td><td>{path_svg(item["path"])}</td></tr>')
    explanation = record.get("explanation") or {"words": [], "entities": []}
    return (f'<div id="kgsf-recs"><table class="kgsf-table"><tr><th>#</th><th>item</th><th>score</th><th>KG path</th></tr>{"".join(rows)}</table>'
            '<p style="font-size:12px;color:#666">score = softmax probability over all items; items already mentioned are left out</p>'
            f'<h4>Attention over the context words</h4>{_bars([(w["word"], w["weight"]) for w in explanation["words"]], "#5b8def")}'
            f'<h4>Attention over the context entities</h4>{_bars([(e["name"], e["weight"]) for e in explanation["entities"]], "#e8923a")}</div>')


def inspect_html(session: DemoSession) -> str:
    """The inspect panel: per seeker message its links, rejections, item slots and the decoding."""
    if not session.records:
        return '<div id="kgsf-inspect" class="kgsf-empty">Nothing to inspect yet.</div>'
    blocks = []
    for record in session.records:
        info = record["inspect"]
        links = "".join(f'<tr><td>{_e(link["span"])}</td><td>{_e(link["node"])}</td><td>{_e(link["type"])}</td>'
                        f'<td>{_e(link["matched_by"])}</td></tr>' for link in info["links"]) or '<tr><td colspan="4">no entity linked</td></tr>'
        rejected = ", ".join(_e(r["node"]) for r in info["rejected"]) or "none"
        words = ", ".join(_e(w) for w in info["rejected_words"]) or "none"
        slots = ("; ".join(f'token {s["position"]}: {_e(s["item"])} (recommendation #{s["rank"]})' for s in info["item_slots"])
                 or ("did not fire" if info["item_slots_on"] else "off (items only through the copy distribution)"))
        decoding = ", ".join(f"{_e(k)}={_e(v)}" for k, v in info["decoding"].items())
        notes = []
        if info["unknown_item_ids"]:
            notes.append("unknown item ids: " + ", ".join(_e(t) for t in info["unknown_item_ids"]))
        if info["truncated"]:
            notes.append(f"message cut to {MAX_MESSAGE_CHARS} characters")
        blocks.append(
            f'<div class="kgsf-turn"><h4>Seeker message {record["index"] + 1}</h4><blockquote class="kgsf-said">{_e(record["seeker"][:300])}</blockquote>'
            f'<table class="kgsf-table"><tr><th>span</th><th>KG node</th><th>type</th><th>matched by</th></tr>{links}</table>'
            f'<p>rejected: {rejected}; rejected words: {words}</p><p>item slot: {slots}</p><p>decoding: {decoding}'
            f' ({record["seconds"]:.3f} s)</p>{"".join(f"<p>{n}</p>" for n in notes)}</div>')
    return '<div id="kgsf-inspect">' + "".join(reversed(blocks)) + "</div>"


# ------------------------------------------------------------------------------------------------
# The Gradio app
# ------------------------------------------------------------------------------------------------
def _import_gradio():
    try:
        import gradio
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return gradio


def build_demo(folder_or_core: str | os.PathLike | DemoCore, ratings_file: str | os.PathLike | None = None,
               queue_size: int = 64, concurrency: int = 1):
    """The ``gr.Blocks`` app on a KGSF folder (or an already loaded :class:`DemoCore`), its queue
    bounded at ``queue_size`` waiting events, ``concurrency`` replies computed at once."""
    gr = _import_gradio()
    core = folder_or_core if isinstance(folder_or_core, DemoCore) else DemoCore.from_pretrained(folder_or_core, ratings_file)
    info = core.describe()
    on = _event_handlers(gr, core, Path(tempfile.mkdtemp(prefix="kgsf-demo-")))

    with gr.Blocks(title="KGSF demo", analytics_enabled=False) as demo:
        gr.Markdown(f"## KGSF conversational recommender\nModel `{_e(info['folder'])}`: {info['items']} items, "
                    f"{info['entities']} KG entities. You are the seeker: say what you like.")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                ui = _chat_panel(gr)
            with gr.Column(scale=2):
                recs, inspect, controls = _side_panel(gr)
        shown = [state, ui.chatbot, recs, inspect, ui.status]
        rated = [state, ui.status, ui.comment]
        ui.send.click(on.chat, [state, ui.message, *controls], [*shown, ui.message], api_name="chat")
        ui.message.submit(on.chat, [state, ui.message, *controls], [*shown, ui.message], api_name=False)
        ui.new.click(on.reset, [state], [*shown, ui.message], api_name="reset")
        ui.export_button.click(on.export, [state], [ui.export_file, ui.status], api_name="export")
        ui.import_file.upload(on.load, [state, ui.import_file], shown, api_name=False)
        ui.up.click(lambda s, n, c: on.rate(s, True, n, c), [state, ui.reply_number, ui.comment], rated, api_name="rate_up")
        ui.down.click(lambda s, n, c: on.rate(s, False, n, c), [state, ui.reply_number, ui.comment], rated, api_name="rate_down")
        ui.chatbot.like(on.like, [state, ui.comment], rated, api_name=False)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    demo.kgsf_core = core  # for tests and the benchmark
    return demo


def _views(session: DemoSession, status: str) -> tuple:
    """(state, chat, recommendations panel, inspect panel, status) of ``session``."""
    record = session.records[-1] if session.records else None
    return session, chat_messages(session), recommendations_html(record), inspect_html(session), status


def _event_handlers(gr, core: DemoCore, export_dir: Path) -> SimpleNamespace:
    """The app's callbacks on ``core`` (chat, reset, export, load, rate, like); exports are written to ``export_dir``."""

    def chat(session, text, decoding, num_beams, seed, k, negation, proximity_weight, max_new_tokens):
        session = session or DemoSession()
        settings = {"decoding": decoding, "num_beams": num_beams, "seed": seed, "k": k, "negation": negation,
                    "proximity_weight": proximity_weight, "max_new_tokens": max_new_tokens}
        try:
            record = core.send(session, text, DemoSettings.from_dict(settings))
        except ConversationError as error:
            return (*_views(session, f"⚠ {error}"), text)
        return (*_views(session, f"reply {record['index'] + 1} in {record['seconds']:.2f} s"), "")

    def reset(session):
        return (*_views(DemoSession(), "new conversation"), "")

    def export(session):
        session = session or DemoSession()
        path = export_dir / f"kgsf-conversation-{session.session_id[:8]}-{len(session.records)}.json"
        path.write_text(json.dumps(core.export(session), indent=2, ensure_ascii=False), encoding="utf-8")
        return str(path), f"exported {len(session.records)} replies"

    def load(session, file):
        if not file:
            return _views(session or DemoSession(), "no file")
        path = Path(file if isinstance(file, str) else getattr(file, "name", file))
        try:
            if path.stat().st_size > MAX_IMPORT_BYTES:
                raise ValueError(f"the file is over {MAX_IMPORT_BYTES} bytes")
            loaded = core.load(path.read_text(encoding="utf-8", errors="replace"))
        except ValueError as error:
            return _views(session or DemoSession(), f"⚠ cannot import: {error}")
        return _views(loaded, f"imported {len(loaded.turns)} turns: continue the conversation")

    def rate(session, up, reply_number, comment):
        session = session or DemoSession()
        index = len(session.records) - 1 if not reply_number else int(reply_number) - 1
        try:
            row = core.rate(session, index, up, comment)
        except ValueError as error:
            return session, f"⚠ {error}", comment
        return session, f"rated reply {row['reply_index'] + 1}: {row['rating']}", ""

    def like(session, comment, data: gr.LikeData):
        session = session or DemoSession()
        reply_index = sum(1 for m in chat_messages(session)[: data.index if isinstance(data.index, int) else data.index[0]]
                          if m["role"] == "assistant")
        return rate(session, bool(data.liked), reply_index + 1, comment)

    like.__annotations__["data"] = gr.LikeData  # gradio finds the event data by its type (annotations are strings here)
    return SimpleNamespace(chat=chat, reset=reset, export=export, load=load, rate=rate, like=like)


def _chat_panel(gr) -> SimpleNamespace:
    """The left column: chat, message box and buttons, status line, rating and export / import accordions."""
    ui = SimpleNamespace()
    ui.chatbot = gr.Chatbot(label="chat", elem_id="kgsf-chat", height=420, render_markdown=False, sanitize_html=True,
                            feedback_options=("Like", "Dislike"))
    with gr.Row():
        ui.message = gr.Textbox(placeholder="I loved Paranormal Activity, anything like it?", show_label=False,
                                elem_id="kgsf-message", scale=5, lines=1)
        ui.send = gr.Button("Send", variant="primary", elem_id="kgsf-send", scale=1)
        ui.new = gr.Button("New conversation", elem_id="kgsf-reset", scale=1)
    ui.status = gr.Markdown("", elem_id="kgsf-status")
    with gr.Accordion("Rate a reply (saved for human evaluation)", open=True):
        with gr.Row():
            ui.reply_number = gr.Number(label="reply number (0: the last)", value=0, precision=0, elem_id="kgsf-rate-number")
            ui.comment = gr.Textbox(label="comment (optional)", elem_id="kgsf-comment")
            ui.up = gr.Button("Good reply", elem_id="kgsf-up")
            ui.down = gr.Button("Bad reply", elem_id="kgsf-down")
    with gr.Accordion("Export / import the conversation", open=True):
        with gr.Row():
            ui.export_button = gr.Button("Export JSON", elem_id="kgsf-export")
            ui.export_file = gr.File(label="exported conversation", elem_id="kgsf-export-file", interactive=False)
            ui.import_file = gr.File(label="import a conversation to continue it", file_types=[".json"], elem_id="kgsf-import")
    return ui


def _side_panel(gr) -> tuple:
    """The right column's tabs: (recommendations HTML, inspect HTML, the controls in ``chat``'s argument order)."""
    with gr.Tab("Recommendations"):
        recs = gr.HTML(recommendations_html(None), elem_id="kgsf-recs-panel")
    with gr.Tab("Inspect"):
        inspect = gr.HTML(inspect_html(DemoSession()), elem_id="kgsf-inspect-panel")
    with gr.Tab("Controls"):
        decoding = gr.Radio(list(DECODINGS), value="default", label="decoding", elem_id="kgsf-decoding",
                            info="default: the folder's settings (item slots, no loops); paper: plain greedy, items via copy")
        num_beams = gr.Slider(2, 8, value=4, step=1, label="beams (beam)")
        seed = gr.Number(value=0, precision=0, label="seed (sampling)", elem_id="kgsf-seed")
        k = gr.Slider(1, 20, value=5, step=1, label="k recommendations", elem_id="kgsf-k")
        negation = gr.Checkbox(value=True, label="negation (\"I hate horror\" excludes)")
        proximity = gr.Slider(0, 20, value=prefs.DEFAULT_PROXIMITY_WEIGHT, step=0.5, label="proximity weight (nats; 0: the recommender's own order)")
        max_new_tokens = gr.Slider(5, 40, value=20, step=1, label="max new tokens")
    return recs, inspect, [decoding, num_beams, seed, k, negation, proximity, max_new_tokens]


def launch_demo(folder: str | os.PathLike | DemoCore, host: str = "127.0.0.1", port: int = 7860, ratings_file: str | os.PathLike | None = None,
                queue_size: int = 64, concurrency: int = 1, block: bool = True):
    """Build and serve the app (``kgsf demo``); returns the Blocks when ``block`` is False."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_demo(folder, ratings_file=ratings_file, queue_size=queue_size, concurrency=concurrency)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, ssr_mode=False, show_error=True, quiet=not block)
    return demo
