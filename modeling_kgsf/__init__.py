"""KGSF model package: configuration, model classes and output types (Auto classes registered on import).

``ConversationalRecommender`` (``pipeline_kgsf``, free text in, recommendations with explanations
and replies out); ``ConversationalRecommendationPipeline`` (``hf_pipeline_kgsf``), the same behind
transformers' ``pipeline("conversational-recommendation", ...)``, registered on import.
"""
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from .configuration_kgsf import KGSFConfig
from .modeling_kgsf import (
    KGSFContextOutput,
    KGSFForConversationalRecommendation,
    KGSFModel,
    KGSFModelOutput,
    KGSFOutput,
    KGSFPreTrainedModel,
)
from .tokenization_kgsf import KGSFTokenizer

AutoConfig.register("kgsf", KGSFConfig, exist_ok=True)
AutoModel.register(KGSFConfig, KGSFModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(KGSFConfig, KGSFForConversationalRecommendation, exist_ok=True)
AutoTokenizer.register(KGSFConfig, slow_tokenizer_class=KGSFTokenizer, exist_ok=True)

from .hf_pipeline_kgsf import ConversationalRecommendationPipeline  # noqa: E402  (registers the pipeline task)

__all__ = [
    "ConversationalRecommendationPipeline",
    "ConversationalRecommender",
    "KGSFConfig",
    "KGSFContextOutput",
    "KGSFForConversationalRecommendation",
    "KGSFModel",
    "KGSFModelOutput",
    "KGSFOutput",
    "KGSFPreTrainedModel",
    "KGSFTokenizer",
]


def __getattr__(name):
    if name == "ConversationalRecommender":
        from .pipeline_kgsf import ConversationalRecommender

        return ConversationalRecommender
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
