"""Hub ids without a network: a saved folder laid out as the Hub cache (``models--org--name/snapshots/
<commit>/``, ``refs/main``) loads by ``"org/name"`` with ``HF_HUB_OFFLINE=1``, in a fresh process where
this repository is not importable, and in this one."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from hub_helpers import lay_out_as_hub_cache, rounded, run_without_package, save_tiny_folder
from modeling_kgsf import ConversationalRecommender, KGSFForConversationalRecommendation
from modeling_kgsf.hf_pipeline_kgsf import load_processor
from modeling_kgsf.processing_kgsf import KGSFProcessor

REPO_ID = "kgsf-org/kgsf-tiny"
TURNS = ["Hi! I loved Paranormal Activity, anything scary?", "Have you seen Toy Story?", "yes, with Tom Hanks, more like that"]
SENTENCE = "I loved @111 , anything scary with Tom Hanks ?"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """``(folder, cache)``: a tiny folder and a Hub cache holding it as ``REPO_ID``."""
    root = tmp_path_factory.mktemp("hub_offline")
    folder = save_tiny_folder(root)
    lay_out_as_hub_cache(folder, root / "hub", REPO_ID)
    return folder, root / "hub"


def test_model_tokenizer_and_processor_by_id_in_a_fresh_process(hub, tmp_path):
    folder, cache = hub
    code = f"""
    import json
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
    model = AutoModelForSeq2SeqLM.from_pretrained({REPO_ID!r}, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained({REPO_ID!r}, trust_remote_code=True)
    batch = torch.load({str(tmp_path / "batch.pt")!r})
    with torch.no_grad():
        torch.save(model(**batch, task="rec").rec_logits, {str(tmp_path / "rec_logits.pt")!r})
    print(json.dumps([type(model).__name__, type(tokenizer).__name__, tokenizer.tokenize({SENTENCE!r})]))
    """
    processor = KGSFProcessor.from_pretrained(folder)
    batch = processor([("seeker", text) for text in TURNS[:1]])
    torch.save(batch, tmp_path / "batch.pt")
    result = run_without_package(code, tmp_path, HF_HUB_OFFLINE=1, HF_HUB_CACHE=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    model_class, tokenizer_class, tokens = json.loads(result.stdout.strip().splitlines()[-1])
    assert (model_class, tokenizer_class) == ("KGSFForConversationalRecommendation", "KGSFTokenizer")
    assert tokens == processor.tokenizer.tokenize(SENTENCE) and "@111" in tokens
    model = KGSFForConversationalRecommendation.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "rec_logits.pt"), model(**batch, task="rec").rec_logits)


def test_pipeline_and_its_processor_by_id_in_a_fresh_process(hub, tmp_path):
    folder, cache = hub
    code = f"""
    import json
    from transformers import pipeline
    crs = pipeline("conversational-recommendation", model={REPO_ID!r}, trust_remote_code=True)
    row = crs.processor.context_row([("seeker", {TURNS[0]!r})])
    print(json.dumps([type(crs.processor).__name__, row, crs({TURNS!r}, k=3)]))
    """
    result = run_without_package(code, tmp_path, HF_HUB_OFFLINE=1, HF_HUB_CACHE=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    processor_class, row, out = json.loads(result.stdout.strip().splitlines()[-1])
    assert processor_class == "KGSFProcessor"
    assert row == json.loads(json.dumps(KGSFProcessor.from_pretrained(folder).context_row([("seeker", TURNS[0])])))
    crs = ConversationalRecommender.from_pretrained(folder)
    reply = crs.respond_with_items(TURNS, k=3)
    assert rounded(out) == rounded({"reply": reply.text, "reply_items": [item.to_dict() for item in reply.items],
                                    "recommendations": [r.to_dict() for r in crs.recommend(TURNS, k=3)]})


def test_ids_in_this_process(hub, tmp_path):
    folder, cache = hub
    offline = {"cache_dir": str(cache), "local_files_only": True}
    model = KGSFForConversationalRecommendation.from_pretrained(REPO_ID, **offline)
    assert torch.equal(model.kgsf.dbpedia_edge_index, KGSFForConversationalRecommendation.from_pretrained(folder).kgsf.dbpedia_edge_index)
    turns = [("seeker", TURNS[0])]
    assert load_processor(REPO_ID, **offline).context_row(turns) == KGSFProcessor.from_pretrained(folder).context_row(turns)
    # a repository without the processor's files: the error names the file
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "kg_resources.json").unlink()
    lay_out_as_hub_cache(bare, cache, "kgsf-org/no-processor")
    with pytest.raises(FileNotFoundError, match="kg_resources.json"):
        load_processor("kgsf-org/no-processor", **offline)
