"""Training commands of the REDIAL and KBRD baselines (``examples/train_redial.py``,
``examples/train_kbrd.py``), with KGSF's data, loop and evaluation.

Like the KGSF stages this module joins data and model (it reads the data through
:class:`training_kgsf.data.KGSFData`); ``modeling_kgsf.baselines`` does not import it.

    from training_kgsf.baselines import train_redial, train_kbrd
    train_redial(["--output_dir", "runs/redial", "--num_epochs", "5"])
    train_kbrd(["--output_dir", "runs/kbrd", "--model_config", "configuration/kgsf_reference.json"])

Both write ``<output_dir>/rec/best`` (recommender stage), ``<output_dir>/conv/best``
(conversation stage) and ``<output_dir>/test_metrics.json`` in the shape of
``examples/evaluate_kgsf.py`` (``{"recommendation": ..., "conversation": ...}``), the numbers
coming from the same evaluation functions (recall all / cold start / dedup; perplexity,
Distinct-n, item ratio, BLEU on greedy replies).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from accelerate.utils import set_seed

from modeling_kgsf.baselines.kbrd import KBRD_CONVERSATION_FLAGS, KBRD_RECOMMENDER_FLAGS
from modeling_kgsf.baselines.redial_baseline import RedialConfig, RedialForConversationalRecommendation, token_item_index_from_vocab
from modeling_kgsf.processing_kgsf import CONV_KEYS, REC_KEYS

from .building import parse_arguments
from .data import DataArguments, KGSFData
from .evaluate_folder import evaluate_model
from .evaluation import evaluate_conversation, evaluate_recommendation
from .stages import train_conversation, train_recommender
from .trainer import StageTrainer, TrainingArguments, make_accelerator

STAGES = ("recommender", "conversation", "both")
# REDIAL reads the batch without the word graph's keys
REDIAL_REC_KEYS = tuple(key for key in REC_KEYS if not key.startswith("context_word"))
REDIAL_CONV_KEYS = tuple(key for key in CONV_KEYS if not key.startswith("context_word"))


# ------------------------------------------------------------------------------------------------
# REDIAL
# ------------------------------------------------------------------------------------------------
@dataclass
class RedialArguments:
    stage: str = field(default="both", metadata={
        "help": "recommender (autoencoder only: <output_dir>/rec), conversation (HRED + switch, recommender frozen: "
                "<output_dir>/conv; start from --init_from, a recommender folder) or both."})
    init_from: str | None = field(default=None, metadata={"help": "A REDIAL folder to start from (e.g. a recommender stage's best/)."})
    embedding_dim: int = field(default=300, metadata={"help": "Token embedding size (word2vec-initialised)."})
    utterance_hidden_size: int = field(default=256, metadata={"help": "Utterance GRU hidden size (each direction)."})
    conversation_hidden_size: int = field(default=512, metadata={"help": "Conversation GRU hidden size."})
    decoder_hidden_size: int = field(default=512, metadata={"help": "Decoder GRU hidden size."})
    decoder_layers: int = field(default=1, metadata={"help": "Decoder GRU layers."})
    recommender_hidden_size: int = field(default=1000, metadata={"help": "Autoencoder hidden layer size."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on embeddings and decoder states."})
    word2vec: bool = field(default=True, metadata={"help": "Initialise the token embeddings with word2vec trained on the train split."})
    generation_batches: int = field(default=2, metadata={"help": "Batches generated at each validation of the conversation stage (0: none)."})
    test_split: str = field(default="test", metadata={"help": "Split of the final evaluation."})
    eval_batch_size: int = field(default=64, metadata={"help": "Batch size of the final evaluation."})
    generation_examples: int = field(default=512, metadata={"help": "Replies generated in the final evaluation (-1: all)."})


def _redial_model(data: KGSFData, args: RedialArguments) -> RedialForConversationalRecommendation:
    """``--init_from``, or a new REDIAL over the data's vocabulary and items."""
    tokenizer, resources = data.tokenizer, data.resources
    if args.init_from:
        model = RedialForConversationalRecommendation.from_pretrained(args.init_from)
        expected = {"vocab_size": len(tokenizer), "n_item": resources.item_entity_ids.numel()}
        wrong = [f"{key}: model {getattr(model.config, key)}, data {value}" for key, value in expected.items() if getattr(model.config, key) != value]
        if wrong:
            raise ValueError(f"{args.init_from} was trained on other data ({'; '.join(wrong)})")
        return model
    vocab = tokenizer.get_vocab()
    config = RedialConfig(
        vocab_size=len(tokenizer), n_item=resources.item_entity_ids.numel(), embedding_dim=args.embedding_dim,
        utterance_hidden_size=args.utterance_hidden_size, conversation_hidden_size=args.conversation_hidden_size,
        decoder_hidden_size=args.decoder_hidden_size, decoder_layers=args.decoder_layers,
        recommender_hidden_size=args.recommender_hidden_size, dropout=args.dropout, split_token_id=vocab.get("_split_", -1),
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    model = RedialForConversationalRecommendation(config)
    model.set_item_maps(resources.item_entity_ids,
                        token_item_index_from_vocab(vocab, resources.entities.movie_id_to_entity, resources.item_index_of_entity))
    if args.word2vec:
        model.load_word_embeddings(data.word_embeddings(args.embedding_dim))
    return model


def _redial_card(folder: Path, stage: str, metrics: dict) -> None:
    shown = "\n".join(f"| {key} | {value:.4f} |" for key, value in metrics.items() if isinstance(value, float))
    (folder / "README.md").write_text(
        f"---\nlibrary_name: transformers\ntags: [redial, conversational-recommendation, baseline]\n---\n"
        f"# REDIAL baseline ({stage} stage)\n\nHRED dialogue model + autoencoder recommender + switch (Li et al., 2018), "
        f"as in `modeling_kgsf/baselines/redial_baseline.py` (what is kept and what is left out is in its docstring).\n\n"
        f"```python\nfrom modeling_kgsf.baselines import RedialForConversationalRecommendation\n"
        f"model = RedialForConversationalRecommendation.from_pretrained(folder)\n```\n\n"
        f"Validation metrics of this checkpoint:\n\n| metric | value |\n|---|---|\n{shown}\n", encoding="utf-8")


def train_redial(argv=None) -> dict:
    """Train REDIAL (recommender stage, then conversation stage with the recommender frozen) and
    evaluate it on ``--test_split``; returns the test metrics (also in ``test_metrics.json``)."""
    training_args, data_args, args = parse_arguments(TrainingArguments, DataArguments, RedialArguments, argv=argv)
    if args.stage not in STAGES:
        raise ValueError(f"--stage must be one of {STAGES}, got {args.stage!r}")
    accelerator = make_accelerator(training_args)
    set_seed(training_args.seed)
    with accelerator.main_process_first():
        data = KGSFData(data_args, args.init_from)
        model = _redial_model(data, args)
    root = Path(training_args.output_dir)

    def make_save(stage):
        def save_model(model, folder, metrics):
            folder = Path(folder)
            model.save_pretrained(folder)
            data.tokenizer.save_pretrained(folder)
            _redial_card(folder, stage, metrics)
        return save_model

    def run_stage(model, stage, task, compute_loss, evaluate, score):
        stage_args = dataclasses.replace(training_args, output_dir=str(root / ("rec" if task == "rec" else "conv")))
        trainer = StageTrainer(stage_args, model, data.split("train", task, data_args.max_train_examples), data.collator(task),
                               compute_loss=compute_loss, evaluate=evaluate, score=score, save_model=make_save(stage),
                               stage=f"redial-{stage}", accelerator=accelerator)
        accelerator.print(trainer.train())
        return RedialForConversationalRecommendation.from_pretrained(Path(stage_args.output_dir) / "best")

    if args.stage in ("recommender", "both"):
        rec_loader = data.eval_dataloader(data_args.eval_split, "rec", training_args.batch_size, accelerator, data_args.max_eval_examples)
        model = run_stage(
            model, "recommender", "rec",
            compute_loss=lambda model, batch: (model(**{key: batch[key] for key in REDIAL_REC_KEYS}, task="rec").loss, {}),
            evaluate=lambda model, accelerator: evaluate_recommendation(model, rec_loader, accelerator),
            score=lambda metrics: metrics["recall@1"] + metrics["recall@50"])
    if args.stage in ("conversation", "both"):
        model.freeze_recommender()
        conv_loader = data.eval_dataloader(data_args.eval_split, "conv", training_args.batch_size, accelerator, data_args.max_eval_examples)
        model = run_stage(
            model, "conversation", "conv",
            compute_loss=lambda model, batch: (model(**{key: batch[key] for key in REDIAL_CONV_KEYS}, task="conv").loss, {}),
            evaluate=lambda model, accelerator: evaluate_conversation(
                model, conv_loader, accelerator, data.tokenizer, generate=args.generation_batches > 0,
                max_generation_batches=args.generation_batches),
            score=lambda metrics: -metrics["perplexity"])

    model = accelerator.prepare(model)
    model.eval()
    results = {"model": "redial", "stage": args.stage, "split": args.test_split}
    loader = data.eval_dataloader(args.test_split, "rec", args.eval_batch_size, accelerator, data_args.max_eval_examples)
    results["recommendation"] = evaluate_recommendation(model, loader, accelerator)
    if args.stage in ("conversation", "both"):
        loader = data.eval_dataloader(args.test_split, "conv", args.eval_batch_size, accelerator, data_args.max_eval_examples)
        batches = None if args.generation_examples < 0 else -(-args.generation_examples // args.eval_batch_size)
        results["conversation"] = evaluate_conversation(model, loader, accelerator, data.tokenizer, max_generation_batches=batches)
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        (root / "test_metrics.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(json.dumps(results, indent=2))
    return results


# ------------------------------------------------------------------------------------------------
# KBRD: KGSF's stages with KBRD's switches
# ------------------------------------------------------------------------------------------------
KBRD_HELP = """Train KBRD = KGSF's recommender and conversation stages with KBRD's configuration, then evaluate.

  python examples/train_kbrd.py --output_dir runs/kbrd [--stage both|recommender|conversation]
      [--model_config configuration/kgsf_reference.json] [--init_from REC_FOLDER]
      [--rec_args "--num_epochs 20 --eval_steps 50"] [--conv_args "--num_epochs 20 --patience 3"]
      [--eval_args "--generation_examples 512"] [any flag of the stage scripts, given to both stages]

It runs (and prints) exactly:
  train_recommender   --output_dir OUT/rec  --config_overrides {rec} [--model_config M] FLAGS REC_ARGS
  train_conversation  --output_dir OUT/conv --init_from OUT/rec/best --config_overrides {conv} FLAGS CONV_ARGS
  evaluate_model      --model OUT/conv/best --output OUT/test_metrics.json DATA_FLAGS EVAL_ARGS
(the same as examples/train_recommender.py, train_conversation.py and evaluate_kgsf.py with those flags).
--stage recommender stops after the first and evaluates OUT/rec/best with --skip_conversation true.
Data flags (--data_dir, --cache_dir, --train_source, ...) also go to the evaluation.
""".format(rec=KBRD_RECOMMENDER_FLAGS, conv=KBRD_CONVERSATION_FLAGS)


def _group_flags(argv: list[str]) -> list[list[str]]:
    """``["--a", "1", "--b", "x", "y", "--c"]`` -> ``[["--a", "1"], ["--b", "x", "y"], ["--c"]]``."""
    groups = []
    for token in argv:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def train_kbrd(argv=None) -> dict:
    """KBRD through KGSF's stage functions (see ``KBRD_HELP``); returns the test metrics."""
    import argparse
    import shlex

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="train_kbrd.py", description=KBRD_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--stage", choices=STAGES, default="both")
    parser.add_argument("--model_config", default=None, help="KGSFConfig JSON of the recommender stage (e.g. configuration/kgsf_reference.json).")
    parser.add_argument("--init_from", default=None, help="Start the conversation stage from this KBRD recommender folder (--stage conversation).")
    parser.add_argument("--config_overrides", default="", help="Extra KGSFConfig overrides of the recommender stage (sizes...).")
    parser.add_argument("--rec_args", default="", help="Extra flags of the recommender stage only (one string).")
    parser.add_argument("--conv_args", default="", help="Extra flags of the conversation stage only (one string).")
    parser.add_argument("--eval_args", default="", help="Extra flags of the final evaluation (one string).")
    args, rest = parser.parse_known_args(argv)
    data_fields = {f"--{item.name}" for item in dataclasses.fields(DataArguments)}
    data_flags = [token for group in _group_flags(rest) if group[0].split("=")[0] in data_fields for token in group]
    out = Path(args.output_dir)
    rec_folder = Path(args.init_from) if args.init_from else out / "rec" / "best"

    def show(name, stage_argv):
        print(f"[kbrd] {name} " + " ".join(shlex.quote(part) for part in stage_argv), flush=True)
        return stage_argv

    if args.stage in ("recommender", "both"):
        overrides = ",".join(filter(None, [KBRD_RECOMMENDER_FLAGS, args.config_overrides]))
        stage_argv = ["--output_dir", str(out / "rec"), "--config_overrides", overrides,
                      *(["--model_config", args.model_config] if args.model_config else []), *rest, *shlex.split(args.rec_args)]
        train_recommender(show("train_recommender", stage_argv))
    if args.stage in ("conversation", "both"):
        stage_argv = ["--output_dir", str(out / "conv"), "--init_from", str(rec_folder), "--config_overrides", KBRD_CONVERSATION_FLAGS,
                      *rest, *shlex.split(args.conv_args)]
        train_conversation(show("train_conversation", stage_argv))
        evaluation = ["--model", str(out / "conv" / "best")]
    else:
        evaluation = ["--model", str(out / "rec" / "best"), "--skip_conversation", "true"]
    evaluation += ["--output", str(out / "test_metrics.json"), *data_flags, *shlex.split(args.eval_args)]
    return evaluate_model(show("evaluate_model", evaluation))
