"""save_pretrained / from_pretrained: graph buffers bit-exact, identical outputs in a fresh process,
and loading with trust_remote_code where the repository is not importable."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kgsf_tiny import tiny_batch, tiny_model
from modeling_kgsf import KGSFForConversationalRecommendation
from modeling_kgsf.processing_kgsf import CONTEXT_KEYS

BUFFERS = ("dbpedia_edge_index", "dbpedia_edge_type", "conceptnet_edge_index", "item_entity_ids", "kg_word_vocab_mask", "item_token_vocab_mask")

# Run in a fresh interpreter from a temporary folder, with the repository made unimportable.
FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    class BlockRepository:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modeling_kgsf", "datasets_scripts", "kgsf_tiny"):
                raise ImportError(f"{name} must not be importable here")
    sys.meta_path.insert(0, BlockRepository())
    import torch
    from transformers import AutoModel, AutoModelForSeq2SeqLM
    folder, batch_file, out_file = sys.argv[1:4]
    batch = torch.load(batch_file)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    body = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        rec_logits = model(**batch).rec_logits
        body_rec_logits = body(**batch).rec_logits
    generated = model.generate(**batch, max_new_tokens=6, num_beams=1, do_sample=False)
    beams = model.generate(**batch, max_new_tokens=6, num_beams=3, do_sample=False)
    torch.save({"rec_logits": rec_logits, "body_rec_logits": body_rec_logits, "generated": generated, "beams": beams,
                "class": type(model).__name__, "body_class": type(body).__name__,
                "buffers": {name: getattr(model.kgsf, name) for name in %r}}, out_file)
    """
    % (BUFFERS,)
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model(seed=3)
    graphs = {name: getattr(model.kgsf, name).clone() for name in BUFFERS[:4]}  # the graph buffers change through set_graphs
    graphs["dbpedia_edge_index"][:, 0] = torch.tensor([model.config.n_entity - 1, 0])  # ids above 2**24 would not survive a float round trip
    model.set_graphs(**graphs)
    folder = tmp_path_factory.mktemp("kgsf") / "model"
    model.save_pretrained(folder)
    return model.eval(), folder


def test_folder_contents(saved):
    _, folder = saved
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "modeling_kgsf.py", "configuration_kgsf.py",
            "graph_encoders.py", "transformer.py", "fusion.py", "recommender.py", "copy_head.py"} <= names
    assert {"hf_pipeline_kgsf.py", "pipeline_kgsf.py", "processing_kgsf.py", "tokenization_kgsf.py"} <= names  # the pipeline's code
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForSeq2SeqLM"] == "modeling_kgsf.KGSFForConversationalRecommendation"
    assert auto_map["AutoModel"] == "modeling_kgsf.KGSFModel" and auto_map["AutoConfig"] == "configuration_kgsf.KGSFConfig"


def test_buffers_and_weights_survive_from_pretrained(saved):
    model, folder = saved
    loaded = KGSFForConversationalRecommendation.from_pretrained(folder)
    for name in BUFFERS:
        original, restored = getattr(model.kgsf, name), getattr(loaded.kgsf, name)
        assert restored.dtype == original.dtype and torch.equal(restored, original), name
    original_state, loaded_state = model.state_dict(), loaded.state_dict()
    assert original_state.keys() == loaded_state.keys()
    for key in original_state:
        assert torch.equal(original_state[key], loaded_state[key]), key
    assert loaded.generation_config.use_cache is True


def test_fresh_process_trust_remote_code_identical_outputs(saved, tmp_path):
    model, folder = saved
    batch = {key: value for key, value in tiny_batch(seed=21, empty_rows=(3,)).items() if key in CONTEXT_KEYS}
    torch.save(batch, tmp_path / "batch.pt")
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "hf_modules")
    result = subprocess.run([sys.executable, str(script), str(folder), str(tmp_path / "batch.pt"), str(tmp_path / "out.pt")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = torch.load(tmp_path / "out.pt")
    assert fresh["class"] == "KGSFForConversationalRecommendation" and fresh["body_class"] == "KGSFModel"
    with torch.no_grad():
        rec_logits = model(**batch).rec_logits
    generated = model.generate(**batch, max_new_tokens=6, num_beams=1, do_sample=False)
    beams = model.generate(**batch, max_new_tokens=6, num_beams=3, do_sample=False)
    assert torch.equal(fresh["rec_logits"], rec_logits)
    assert torch.equal(fresh["body_rec_logits"], rec_logits)
    assert torch.equal(fresh["generated"], generated)
    assert torch.equal(fresh["beams"], beams)
    for name in BUFFERS:
        assert torch.equal(fresh["buffers"][name], getattr(model.kgsf, name)), name
