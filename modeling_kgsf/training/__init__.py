"""Training and evaluation of KGSF: the stage loop, the three stages of Algorithm 1, evaluation and
model cards. ``examples/`` holds thin command-line scripts around these.

This subpackage joins the data (``datasets_scripts``) and the model; the model modules never
import it, so a ``trust_remote_code`` folder does not need it.
"""
from .evaluation import decode_reply, evaluate_conversation, evaluate_recommendation
from .model_card import config_summary, write_model_card
from .stages import (
    ConversationArguments,
    DataArguments,
    EvaluationArguments,
    KGSFData,
    ModelArguments,
    build_model,
    evaluate_model,
    make_save_model,
    parse_arguments,
    parse_overrides,
    pretrain_mim,
    train_conversation,
    train_recommender,
    train_stage,
)
from .trainer import (EpochShuffleSampler, LengthGroupedSampler, LoopState, StageTrainer, TrainingArguments, freeze_unused_parameters,
                      make_accelerator)

__all__ = [
    "ConversationArguments", "DataArguments", "EpochShuffleSampler", "EvaluationArguments", "KGSFData", "LengthGroupedSampler",
    "LoopState", "ModelArguments", "StageTrainer", "TrainingArguments", "build_model", "config_summary", "decode_reply",
    "evaluate_conversation", "evaluate_model", "evaluate_recommendation", "freeze_unused_parameters", "make_accelerator",
    "make_save_model", "parse_arguments", "parse_overrides", "pretrain_mim", "train_conversation", "train_recommender",
    "train_stage", "write_model_card",
]
