"""``pipeline("conversational-recommendation", ...)``: KGSF behind transformers' ``Pipeline`` API.

```python
from transformers import pipeline

crs = pipeline("conversational-recommendation", model="runs/quick/conversation/best", trust_remote_code=True)
out = crs(["Hi! I loved Paranormal Activity, anything scary?"], k=5)
out["reply"], out["reply_items"], out["recommendations"]      # text; dicts with rank, title, score, explanation
```

The pipeline is :class:`~modeling_kgsf.pipeline_kgsf.ConversationalRecommender` (same inputs, same
ranking, preferences, explanations and replies) run by transformers: the model and tokenizer come
from ``pipeline()`` (a folder or a Hub id), the :class:`~modeling_kgsf.processing_kgsf.KGSFProcessor`
from the same folder or repository (``kg_resources.json``, ``entity_linker.json``, ``item_cues.json``).

Every model folder carries this pipeline: ``KGSFPreTrainedModel.save_pretrained`` writes
``custom_pipelines`` into ``config.json`` and copies this file with the modules it imports
(:func:`save_pipeline_code`), so ``pipeline(..., trust_remote_code=True)`` works where only
transformers is installed. With the package imported the task is also in transformers'
``PIPELINE_REGISTRY`` (``pipeline("conversational-recommendation", model=model, tokenizer=tokenizer)``
with loaded objects needs no ``trust_remote_code``).

Inputs: one conversation (a string, a list of strings alternating seeker / recommender with the
seeker first, ``{"role", "text" | "content"}`` dicts, ``(role, text)`` pairs), or a list of
conversations (a list of lists), which gives a list of outputs. Output: ``{"reply": text or None,
"reply_items": [...], "recommendations": [...]}``, each item a ``Recommendation.to_dict()``
(``rank, title, movie_id, entity_id, item_index, score, logit, explanation``).

Arguments (at ``pipeline(...)`` or per call): ``k`` (10), ``negation`` (True), ``proximity_weight``,
``negative_weight``, ``candidates``, ``audience`` (True) (see :meth:`ConversationalRecommender.recommend`; the reply's item
slots follow the same ranking), ``exclude_mentioned`` (True),
``explain`` (True), ``max_hops`` (2), ``reply`` (True; False ranks only), and any ``generate``
argument (``max_new_tokens``, ``num_beams``, ``do_sample``, ``top_p``, ``item_slots``, ...; also as
``generate_kwargs={...}``).
"""
from __future__ import annotations

import inspect
from pathlib import Path

from transformers import AutoModelForSeq2SeqLM, GenerationConfig, Pipeline
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import cached_file

from .generation_kgsf import KGSF_GENERATION_DEFAULTS
from .pipeline_kgsf import ROLE_ALIASES, ConversationalRecommender, normalize_turns
from .preferences_kgsf import DEFAULT_NEGATIVE_WEIGHT, DEFAULT_PROXIMITY_WEIGHT, ITEM_CUES_FILE  # also copies preferences_kgsf.py (*)
from .processing_kgsf import KG_RESOURCES_FILE, LINKER_FILE, KGSFProcessor
from .tokenization_kgsf import KGSFTokenizer

# (*) transformers copies a module's code files by the ``from .x import`` lines it finds; pipeline_kgsf's
# ``from . import preferences_kgsf`` is not one of them.

TASK = "conversational-recommendation"
#: ``generate`` arguments the pipeline passes through: the library's and KGSF's own (``generation_kgsf``).
GENERATE_KEYS = frozenset(
    {key for key in vars(GenerationConfig()) if not key.startswith("_")} | {"generation_config", *KGSF_GENERATION_DEFAULTS})
_RANKING_KEYS = ("negation", "proximity_weight", "negative_weight", "candidates", "audience")


class _Conversation:
    """One conversation's turns, so that ``Pipeline.__call__`` does not read a list of turns as a batch."""

    def __init__(self, turns):
        self.turns = turns


def _is_turn(turn) -> bool:
    if isinstance(turn, (str, dict)):
        return True
    return (isinstance(turn, (tuple, list)) and len(turn) == 2 and all(isinstance(part, str) for part in turn)
            and turn[0].lower() in ROLE_ALIASES)


def _is_conversation(inputs) -> bool:
    if isinstance(inputs, (str, dict)) or hasattr(inputs, "messages"):  # transformers' Chat
        return True
    return isinstance(inputs, (list, tuple)) and all(_is_turn(turn) for turn in inputs)


def load_processor(name_or_path, tokenizer=None, **hub_kwargs) -> KGSFProcessor:
    """The :class:`KGSFProcessor` of a model folder or a Hub repository (its files fetched with
    transformers' ``cached_file``: the Hub cache, ``HF_HUB_OFFLINE`` and ``revision`` apply)."""
    folder = Path(str(name_or_path))
    if not folder.is_dir():
        try:
            folder = Path(cached_file(str(name_or_path), KG_RESOURCES_FILE, **hub_kwargs)).parent
        except OSError as error:
            raise FileNotFoundError(f"{name_or_path}: cannot get {KG_RESOURCES_FILE}, which the pipeline needs ({error})") from None
        for optional in (LINKER_FILE, ITEM_CUES_FILE):
            cached_file(str(name_or_path), optional, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if tokenizer is None:
            tokenizer = KGSFTokenizer.from_pretrained(str(name_or_path), **hub_kwargs)
    return KGSFProcessor.from_pretrained(folder, tokenizer=tokenizer)


class ConversationalRecommendationPipeline(Pipeline):
    """Recommendations with scores and explanations, and the next reply with the items it names."""

    _load_tokenizer = True
    _load_processor = False  # the KGSFProcessor is not a transformers processor: loaded from the model's files
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, model, tokenizer=None, processor=None, **kwargs):
        """``processor``: a :class:`KGSFProcessor`; by default the one saved beside the model
        (``model.name_or_path``, a folder or a Hub id)."""
        super().__init__(model, tokenizer=tokenizer, **kwargs)
        if not hasattr(self.model, "kgsf") or not self.model.can_generate():
            raise ValueError(f"the {TASK} pipeline needs a KGSF model (KGSFForConversationalRecommendation), "
                             f"got {type(self.model).__name__}")
        if processor is None:
            source = self.model.name_or_path
            if not source:
                raise ValueError("the model was not loaded from a folder or the Hub: pass processor=KGSFProcessor.from_pretrained(FOLDER)")
            processor = load_processor(source, tokenizer=self.tokenizer)
        items = self.model.kgsf.item_entity_ids.tolist()
        if processor.entities.num_entities != self.model.config.n_entity or list(processor.entities.item_entity_ids) != items:
            raise ValueError(f"the processor does not match the model: {processor.entities.num_entities} entities vs the model's "
                             f"{self.model.config.n_entity}, or another item list")
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.recommender = ConversationalRecommender(self.model, processor, folder=self.model.name_or_path or None)
        # the reply's item slots follow the same preferences where respond_with_items takes them
        self._reply_ranking_keys = set(_RANKING_KEYS) & set(inspect.signature(self.recommender.respond_with_items).parameters)

    def _sanitize_parameters(self, k=None, negation=None, proximity_weight=None, negative_weight=None, candidates=None,
                             audience=None, exclude_mentioned=None, explain=None, max_hops=None, reply=None, generate_kwargs=None,
                             **kwargs):
        unknown = sorted(set(kwargs) - GENERATE_KEYS)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            "(k, negation, proximity_weight, negative_weight, candidates, audience, exclude_mentioned, explain, max_hops, "
                            "reply, or a generate() argument)")
        given = dict(k=k, negation=negation, proximity_weight=proximity_weight, negative_weight=negative_weight, candidates=candidates,
                     audience=audience, exclude_mentioned=exclude_mentioned, explain=explain, max_hops=max_hops, reply=reply)
        forward = {key: value for key, value in given.items() if value is not None}
        if generate_kwargs or kwargs:
            forward["generate_kwargs"] = {**(generate_kwargs or {}), **kwargs}
        return {}, forward, {}

    def __call__(self, conversations, **kwargs):
        """One conversation -> one output dict; a list of conversations (lists of turns) -> a list of them."""
        if _is_conversation(conversations):
            return super().__call__(_Conversation(conversations), **kwargs)
        if isinstance(conversations, (list, tuple)) and conversations and all(map(_is_conversation, conversations)):
            return super().__call__([_Conversation(turns) for turns in conversations], **kwargs)
        return super().__call__(conversations, **kwargs)  # a dataset or generator of conversations

    def preprocess(self, inputs):
        turns = inputs.turns if isinstance(inputs, _Conversation) else inputs
        if hasattr(turns, "messages"):
            turns = turns.messages
        return {"turns": normalize_turns(turns)}

    def _forward(self, model_inputs, k=10, negation=True, proximity_weight=DEFAULT_PROXIMITY_WEIGHT,
                 negative_weight=DEFAULT_NEGATIVE_WEIGHT, candidates=None, audience=None, exclude_mentioned=True, explain=True,
                 max_hops=2, reply=True, generate_kwargs=None):
        turns, crs = model_inputs["turns"], self.recommender
        ranking = dict(negation=negation, proximity_weight=proximity_weight, negative_weight=negative_weight)
        if candidates is not None:
            ranking["candidates"] = candidates
        if audience is not None:  # a folder's own older code may not take it
            ranking["audience"] = audience
        recommendations = crs.recommend(turns, k=k, exclude_mentioned=exclude_mentioned, explain=explain, max_hops=max_hops, **ranking)
        answer = None
        if reply:
            ranking = {key: value for key, value in ranking.items() if key in self._reply_ranking_keys}
            answer = crs.respond_with_items(turns, k=k, explain=explain, max_hops=max_hops, **ranking, **(generate_kwargs or {}))
        return {"recommendations": recommendations, "reply": answer}

    def postprocess(self, model_outputs):
        answer = model_outputs["reply"]
        return {
            "reply": answer.text if answer is not None else None,
            "reply_items": [item.to_dict() for item in answer.items] if answer is not None else [],
            "recommendations": [recommendation.to_dict() for recommendation in model_outputs["recommendations"]],
        }

    def save_pretrained(self, save_directory, **kwargs):
        """As ``Pipeline.save_pretrained`` (model with this pipeline's code, tokenizer), plus the processor's files."""
        super().save_pretrained(save_directory, **kwargs)
        if Path(save_directory).is_dir():
            self.processor.save_pretrained(save_directory, save_tokenizer=False)


def custom_pipelines() -> dict:
    """The ``custom_pipelines`` entry of ``config.json`` (what ``pipeline()`` reads with ``trust_remote_code``)."""
    cls = ConversationalRecommendationPipeline
    return {TASK: {"impl": f"{cls.__module__.split('.')[-1]}.{cls.__name__}", "pt": ["AutoModelForSeq2SeqLM"]}}


def save_pipeline_code(folder) -> list:
    """Copy this module and every module it imports relatively into ``folder`` (the processor's
    included), so that the folder runs the pipeline where the package is not installed."""
    return custom_object_save(ConversationalRecommendationPipeline, folder)


# Registered once per process (a copy loaded as remote code next to the package keeps the package's
# entry, without transformers' "overwriting" warning); ``_registered_impl`` is what
# ``Pipeline.save_pretrained`` reads to write ``custom_pipelines`` and copy this code.
if TASK not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=ConversationalRecommendationPipeline, pt_model=AutoModelForSeq2SeqLM)
ConversationalRecommendationPipeline._registered_impl = {
    TASK: {"impl": ConversationalRecommendationPipeline, "pt": (AutoModelForSeq2SeqLM,)}}
