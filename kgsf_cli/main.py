"""``kgsf`` command line: talk to a trained KGSF folder.

    kgsf recommend FOLDER "I loved Paranormal Activity" ["recommender turn" "seeker turn" ...] [--json]
    kgsf chat FOLDER
    kgsf demo FOLDER [--host 127.0.0.1] [--port 7860] [--ratings ratings.jsonl]

``recommend`` takes the conversation as arguments, alternating seeker / recommender from the
seeker (``--first recommender`` to start with the recommender), and prints the recommendations
with their explanations (``--json``: one JSON object; ``--reply`` adds the generated reply).
``chat`` reads one seeker message per line from stdin and answers each with recommendations, the
reasons and a generated reply (which becomes the recommender's turn) with the items it names and
why; ``/reset`` starts a new
conversation, ``/quit`` or end of input leaves. Errors (unknown folder, a folder that is not a
KGSF model or lacks ``kg_resources.json``, an empty conversation) are one line on stderr and exit
status 1 (2 for bad usage).

Both take the ranking switches of :meth:`~modeling_kgsf.ConversationalRecommender.recommend`:
``-k``, ``--proximity-weight`` (0: the recommender's own order), ``--no-negation``,
``--no-audience`` (ignore the folder's ``item_cues.json``) and ``--candidates`` (the recommender's
top N that the graph terms may re-order).

Replies use the folder's generation settings (item slots filled by the recommender, no repeated
3-gram, a repetition penalty; docs/DESIGN.md "Replies and item slots"); ``--decoding paper`` is the
paper's plain greedy decoding with items only through the copy distribution.
"""
from __future__ import annotations

import argparse
import json
import sys

from modeling_kgsf.generation_kgsf import PAPER_DECODING
from modeling_kgsf.pipeline_kgsf import ConversationError, ModelFolderError, Recommendation

SCORE_NOTE = "score = softmax probability over all items"


def _why(recommendation: Recommendation) -> list[str]:
    explanation = recommendation.explanation
    if explanation is None:
        return []
    lines = []
    if explanation.words:
        lines.append("words: " + ", ".join(f"{w.word} ({w.weight:.2f})" for w in explanation.words))
    if explanation.entities:
        lines.append("entities: " + ", ".join(f"{e.name} ({e.weight:.2f})" for e in explanation.entities))
    lines.append(f"path: {explanation.path}" if explanation.path else "path: none within the hop limit")
    return lines


def format_recommendations(recommendations: list[Recommendation], show_why: bool = True) -> str:
    if not recommendations:
        return "(no recommendation)"
    lines = []
    for recommendation in recommendations:
        lines.append(f"{recommendation.rank:>2}. {recommendation.title}  [score {recommendation.score:.4f}]")
        if show_why:
            lines.extend(f"      why {line}" if index == 0 else f"          {line}" for index, line in enumerate(_why(recommendation)))
    return "\n".join(lines)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a trained KGSF folder (e.g. runs/quick/conversation/best)")
    parser.add_argument("-k", "--k", type=int, default=None, help="number of recommendations")
    parser.add_argument("--proximity-weight", type=float, default=None,
                        help="nats the item graph may add to an item joined to the liked actors, directors, genres... "
                             "(default 8; 0: the recommender's own order)")
    parser.add_argument("--no-negation", action="store_true",
                        help="ignore what the seeker rejects (\"I hate horror\"): no rejected entities taken out, no penalty")
    parser.add_argument("--no-audience", action="store_true",
                        help="ignore what the training conversations say about the items (item_cues.json): no exclusions "
                             "for a request about children or a rejected horror, no preference for family films")
    parser.add_argument("--candidates", type=int, default=None,
                        help="the recommender's top N that the graph terms may re-order (default 50; 0: all items)")
    parser.add_argument("--include-mentioned", action="store_true", help="keep items the conversation already mentions (left out by default)")
    parser.add_argument("--max-hops", type=int, default=2, help="longest DBpedia path shown as an explanation (default 2)")
    parser.add_argument("--max-new-tokens", type=int, default=20, help="length bound of generated replies (default 20)")
    parser.add_argument("--num-beams", type=int, default=None,
                        help="beam search width for replies (default: the folder's generation_config, 4 unless changed; 1: greedy)")
    parser.add_argument("--decoding", choices=("default", "paper"), default="default",
                        help="replies: the folder's generation settings (item slots, no loops; default) or the paper's plain "
                             "greedy decoding (items only through the copy distribution)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kgsf", description="Recommend movies and chat with a trained KGSF model.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{recommend,chat,demo}")
    recommend = commands.add_parser("recommend", help="one-shot recommendations for a conversation given as arguments",
                                    description="Recommendations (with explanations) for the turn after the given conversation.")
    _add_common(recommend)
    recommend.add_argument("turns", nargs="*", help="conversation turns, alternating seeker / recommender")
    recommend.add_argument("--first", choices=("seeker", "recommender"), default="seeker", help="who speaks the first turn (default seeker)")
    recommend.add_argument("--json", action="store_true", help="print one JSON object")
    recommend.add_argument("--reply", action="store_true", help="also generate the recommender's reply")
    recommend.add_argument("--no-explain", action="store_true", help="skip the explanations")
    chat = commands.add_parser("chat", help="interactive conversation on stdin",
                               description="Type seeker messages; see recommendations, why, and the model's reply.")
    _add_common(chat)
    chat.add_argument("--no-reply", action="store_true", help="do not generate replies (recommendations only)")
    demo = commands.add_parser("demo", help="web app: chat, recommendations, inspect, export, ratings (pip install 'kgsf[demo]')",
                               description="Serve a Gradio app to talk to the model in a browser (modeling_kgsf/demo_kgsf.py).")
    demo.add_argument("folder", help="a trained KGSF folder (e.g. runs/quick/conversation/best)")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    demo.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    demo.add_argument("--ratings", default="demo_ratings.jsonl", help="JSONL file the reply ratings are appended to (default demo_ratings.jsonl)")
    demo.add_argument("--queue-size", type=int, default=64, help="most requests waiting at once; more are refused (default 64)")
    demo.add_argument("--concurrency", type=int, default=1, help="replies computed at once (default 1)")
    return parser


def run_demo(args) -> int:
    """``kgsf demo``: the Gradio app of :mod:`modeling_kgsf.demo_kgsf` (gradio imported only here)."""
    from modeling_kgsf.demo_kgsf import INSTALL_HINT, DemoCore, launch_demo

    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"kgsf: error: {INSTALL_HINT}", file=sys.stderr)
        return 1
    core = DemoCore.from_pretrained(args.folder, ratings_file=args.ratings)
    print(f"KGSF demo of {args.folder} on http://{args.host}:{args.port} (ratings -> {args.ratings}); Ctrl+C stops it.", flush=True)
    launch_demo(core, host=args.host, port=args.port, queue_size=args.queue_size, concurrency=args.concurrency)
    return 0


def _reply(crs, turns, args):
    """The generated reply (a ``Reply``: text and the items it names with their explanations)."""
    kwargs = dict(PAPER_DECODING) if args.decoding == "paper" else {}
    if args.num_beams is not None:  # else the folder's own decoding, as respond() and the demo use it
        kwargs["num_beams"] = args.num_beams
    return crs.respond_with_items(turns, max_new_tokens=args.max_new_tokens, max_hops=args.max_hops, **_ranking(args), **kwargs)


def _ranking(args) -> dict:
    """The ranking switches as :meth:`~modeling_kgsf.ConversationalRecommender.recommend` arguments."""
    return {"negation": not args.no_negation, "proximity_weight": args.proximity_weight, "candidates": args.candidates,
            "audience": not args.no_audience}


def format_reply_items(items: list[Recommendation]) -> list[str]:
    """One line per item a reply names: its rank among the recommendations and the path that explains it."""
    lines = []
    for item in items:
        path = item.explanation.path if item.explanation else None
        lines.append(f"      names {item.title} (recommendation #{item.rank}): {path or 'no path within the hop limit'}")
    return lines


def _turns_with_roles(texts: list[str], first: str) -> list[dict]:
    roles = ("seeker", "recommender") if first == "seeker" else ("recommender", "seeker")
    return [{"role": roles[index % 2], "text": text} for index, text in enumerate(texts)]


def _load(folder: str):
    from transformers.utils import logging as transformers_logging

    from modeling_kgsf.pipeline_kgsf import ConversationalRecommender

    transformers_logging.disable_progress_bar()  # no "Loading weights" bar on the terminal
    return ConversationalRecommender.from_pretrained(folder)


def run_recommend(args) -> int:
    turns = _turns_with_roles(args.turns, args.first)
    if not any(turn["text"].strip() for turn in turns):
        raise ConversationError("empty conversation: give at least one turn, e.g. kgsf recommend FOLDER \"I like horror movies\"")
    crs = _load(args.folder)
    recommendations = crs.recommend(turns, k=args.k or 10, exclude_mentioned=not args.include_mentioned,
                                    explain=not args.no_explain, max_hops=args.max_hops, **_ranking(args))
    reply = _reply(crs, turns, args) if args.reply else None
    if args.json:
        row = crs.context_row(turns)
        result = {
            "recommendations": [r.to_dict() for r in recommendations],
            "score": "softmax probability over all items",
            "excluded_mentioned": not args.include_mentioned,
            "context": {
                "entities": [{"entity_id": e, "name": crs.entity_name(e)} for e in row["context_entities"]],
                "items": [{"entity_id": e, "name": crs.entity_name(e)} for e in row["context_items"]],
                "words": [crs.concept_of_id.get(c, str(c)) for c in row["context_words"]],
            },
        }
        if reply is not None:
            result["reply"] = reply.text
            result["reply_items"] = [item.to_dict() for item in reply.items]
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        note = "" if args.include_mentioned else "; items already mentioned are left out"
        print(f"Recommendations ({SCORE_NOTE}{note}):")
        print(format_recommendations(recommendations, show_why=not args.no_explain))
        if reply is not None:
            print(f"reply: {reply.text}")
            for line in format_reply_items(reply.items):
                print(line)
    return 0


def run_chat(args) -> int:
    crs = _load(args.folder)
    k = args.k or 3
    print(f"KGSF chat with {args.folder}. Type a message as the seeker; /reset starts over, /quit (or end of input) leaves.")
    turns: list[dict] = []
    while True:
        print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            print()
            break
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            turns = []
            print("(new conversation)")
            continue
        if not text:
            print("(empty message: type something, or /quit)")
            continue
        turns.append({"role": "seeker", "text": text})
        try:
            recommendations = crs.recommend(turns, k=k, exclude_mentioned=not args.include_mentioned, max_hops=args.max_hops,
                                            **_ranking(args))
        except ConversationError as error:
            turns.pop()
            print(f"({error})")
            continue
        print(f"recommendations ({SCORE_NOTE}):")
        print(format_recommendations(recommendations))
        if not args.no_reply:
            reply = _reply(crs, turns, args)
            print(f"kgsf> {reply.text}")
            for line in format_reply_items(reply.items):
                print(line)
            turns.append({"role": "recommender", "text": reply.text})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and not (0 < args.port < 65536 and args.queue_size >= 1 and args.concurrency >= 1):
        parser.error("--port must be 1-65535, --queue-size and --concurrency at least 1")
    if getattr(args, "k", None) is not None and args.k < 1:
        parser.error("-k must be at least 1")
    if getattr(args, "proximity_weight", None) is not None and args.proximity_weight < 0:
        parser.error("--proximity-weight must be at least 0")
    if getattr(args, "candidates", None) is not None and args.candidates < 0:
        parser.error("--candidates must be at least 0")
    try:
        if args.command == "demo":
            return run_demo(args)
        return run_recommend(args) if args.command == "recommend" else run_chat(args)
    except (ModelFolderError, ConversationError) as error:
        print(f"kgsf: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
