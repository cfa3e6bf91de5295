"""``pipeline("conversational-recommendation", ...)``: saved into every KGSF folder, the same results as
``ConversationalRecommender``, its arguments, and a fresh process where the package is not importable."""
from __future__ import annotations

import json

import pytest
from transformers import pipeline

from hub_helpers import rounded, run_without_package, save_tiny_folder
from kgsf_tiny import tiny_config, tiny_model
from modeling_kgsf import (
    ConversationalRecommendationPipeline,
    ConversationalRecommender,
    KGSFForConversationalRecommendation,
    KGSFModel,
    KGSFTokenizer,
)

TASK = "conversational-recommendation"
TURNS = ["Hi! I loved Paranormal Activity, anything scary?"]
DIALOGUE = ["I like horror movies", "Have you seen Toy Story?", "yes, with Tom Hanks, more like that"]
CODE_FILES = ("hf_pipeline_kgsf.py", "pipeline_kgsf.py", "processing_kgsf.py", "linking_kgsf.py", "preferences_kgsf.py",
              "tokenization_kgsf.py", "modeling_kgsf.py")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_folder(tmp_path_factory.mktemp("hf_pipeline"))


@pytest.fixture(scope="module")
def pipe(folder):
    return pipeline(TASK, model=str(folder), trust_remote_code=True)


@pytest.fixture(scope="module")
def crs(folder):
    return ConversationalRecommender.from_pretrained(folder)


def test_every_kgsf_folder_carries_the_pipeline(folder, tmp_path):
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"] == {TASK: {"impl": "hf_pipeline_kgsf.ConversationalRecommendationPipeline",
                                                 "pt": ["AutoModelForSeq2SeqLM"]}}
    for name in CODE_FILES:
        assert (folder / name).is_file(), name
    assert f'pipeline("{TASK}", model="model", trust_remote_code=True)' in (folder / "README.md").read_text()
    # the body alone cannot reply: no pipeline in its folder
    KGSFModel(tiny_config()).save_pretrained(tmp_path / "body")
    assert "custom_pipelines" not in json.loads((tmp_path / "body" / "config.json").read_text())
    assert not (tmp_path / "body" / "hf_pipeline_kgsf.py").exists()


def test_output_is_the_recommenders(pipe, crs):
    out = pipe(TURNS, k=3)
    assert set(out) == {"reply", "reply_items", "recommendations"}
    assert out["recommendations"] == [r.to_dict() for r in crs.recommend(TURNS, k=3)]
    reply = crs.respond_with_items(TURNS, k=3)
    assert out["reply"] == reply.text and out["reply_items"] == [item.to_dict() for item in reply.items]
    assert len(out["recommendations"]) == 3 and out["recommendations"][0]["explanation"]["entities"]
    assert json.loads(json.dumps(out)) == out  # plain JSON types


def test_turn_forms_agree(pipe):
    expected = pipe(DIALOGUE, k=3)
    roles = ["user", "assistant", "user"]
    assert pipe([{"role": role, "content": text} for role, text in zip(roles, DIALOGUE)], k=3) == expected  # chat messages
    assert pipe([{"role": role, "text": text} for role, text in zip(("seeker", "recommender", "seeker"), DIALOGUE)], k=3) == expected
    assert pipe([(role, text) for role, text in zip(roles, DIALOGUE)], k=3) == expected
    assert pipe(TURNS[0], k=3) == pipe(TURNS, k=3)


def test_ranking_arguments(pipe, crs, monkeypatch):
    turns = ["I love Tom Hanks but I hate horror movies"]
    for settings in ({"negation": False}, {"proximity_weight": 0}, {"negative_weight": 3, "candidates": 2}, {"audience": False}):
        out = pipe(turns, k=4, reply=False, **settings)
        assert out["reply"] is None and out["reply_items"] == []
        assert out["recommendations"] == [r.to_dict() for r in crs.recommend(turns, k=4, **settings)]
    assert len(pipe(TURNS, k=2, reply=False)["recommendations"]) == 2
    # the same settings reach the ranking the reply's item slots fill from
    calls = {}
    for name in ("recommend", "respond_with_items"):
        method = getattr(pipe.recommender, name)
        monkeypatch.setattr(pipe.recommender, name, lambda turns, _m=method, _n=name, **kwargs: calls.update({_n: kwargs}) or _m(turns, **kwargs))
    out = pipe(turns, k=3, negation=False, proximity_weight=0.5, negative_weight=3, candidates=2, audience=False)
    settings = {"k": 3, "negation": False, "proximity_weight": 0.5, "negative_weight": 3, "candidates": 2, "audience": False}
    for name in ("recommend", "respond_with_items"):
        assert {key: calls[name][key] for key in settings} == settings, name
    reply = crs.respond_with_items(turns, k=3, negation=False, proximity_weight=0.5, negative_weight=3, candidates=2, audience=False)
    assert out["reply"] == reply.text and out["reply_items"] == [item.to_dict() for item in reply.items]
    configured = ConversationalRecommendationPipeline(model=pipe.model, tokenizer=pipe.tokenizer, processor=pipe.processor, k=2, reply=False)
    assert configured(TURNS) == pipe(TURNS, k=2, reply=False)  # arguments given at construction


def test_generate_arguments_reach_generate(pipe, crs):
    beams = pipe(TURNS, k=3, max_new_tokens=4, num_beams=2)
    reply = crs.respond_with_items(TURNS, k=3, max_new_tokens=4, num_beams=2)
    assert beams["reply"] == reply.text and len(reply.tokens) <= 4
    assert pipe(TURNS, k=3, generate_kwargs={"max_new_tokens": 4, "num_beams": 2}) == beams
    paper = pipe(TURNS, k=3, max_new_tokens=6, item_slots=False, no_repeat_ngram_size=0, repetition_penalty=1.0)
    assert paper["reply"] == crs.respond(TURNS, max_new_tokens=6, item_slots=False, no_repeat_ngram_size=0, repetition_penalty=1.0)
    assert paper["reply"] != pipe(TURNS, k=3, max_new_tokens=6)["reply"]  # the item slots name films, the copy head alone does not


def test_a_list_of_conversations_is_a_batch(pipe):
    outputs = pipe([TURNS, DIALOGUE], k=2, reply=False)
    assert outputs == [pipe(TURNS, k=2, reply=False), pipe(DIALOGUE, k=2, reply=False)]


def test_clear_errors(pipe):
    with pytest.raises(ValueError, match="empty conversation"):
        pipe([])
    with pytest.raises(ValueError, match="unknown role 'system'"):
        pipe([{"role": "system", "content": "be nice"}])
    with pytest.raises(TypeError, match="unknown argument topk"):
        pipe(TURNS, topk=3)


def test_loaded_objects_need_no_remote_code(folder, pipe):
    model = KGSFForConversationalRecommendation.from_pretrained(folder)
    registered = pipeline(TASK, model=model, tokenizer=KGSFTokenizer.from_pretrained(folder))  # transformers' PIPELINE_REGISTRY
    assert type(registered) is ConversationalRecommendationPipeline
    assert rounded(registered(DIALOGUE, k=3)) == rounded(pipe(DIALOGUE, k=3))
    with pytest.raises(ValueError, match="pass processor="):
        pipeline(TASK, model=tiny_model(), tokenizer=registered.tokenizer)


def test_pipeline_save_pretrained_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    for name in ("kg_resources.json", "entity_linker.json", "processor_config.json", "vocab.json", *CODE_FILES):
        assert (tmp_path / "saved" / name).is_file(), name
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["custom_pipelines"][TASK]["pt"] == ["AutoModelForSeq2SeqLM"]
    reloaded = pipeline(TASK, model=str(tmp_path / "saved"), trust_remote_code=True)
    assert rounded(reloaded(DIALOGUE, k=3)) == rounded(pipe(DIALOGUE, k=3))


def test_fresh_process_without_the_package(folder, pipe, tmp_path):
    code = f"""
    import json
    from transformers import pipeline
    crs = pipeline({TASK!r}, model={str(folder)!r}, trust_remote_code=True)
    print(json.dumps([type(crs).__name__, crs({TURNS!r}, k=3), crs({DIALOGUE!r}, k=3, num_beams=2, max_new_tokens=5)]))
    """
    result = run_without_package(code, tmp_path, HF_HUB_OFFLINE=1)
    assert result.returncode == 0, result.stderr[-3000:]
    name, first, second = json.loads(result.stdout.strip().splitlines()[-1])
    assert name == "ConversationalRecommendationPipeline"
    assert rounded(first) == rounded(pipe(TURNS, k=3))
    assert rounded(second) == rounded(pipe(DIALOGUE, k=3, num_beams=2, max_new_tokens=5))
