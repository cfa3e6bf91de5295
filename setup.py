"""kgsf: the KGSF conversational recommender (Zhou et al., KDD 2020) as a HuggingFace-style package."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# torch: a range that resolves to the 2.13.0 CPU wheel on the project's machines (a newer
# release would pull a multi-GB CUDA build). Everything else: the major versions we test with.
install_requires = [
    "torch>=2.4,<2.14",
    "torch-geometric>=2.5,<3",
    "transformers>=5.0,<6",
    "datasets>=4.0,<6",
    "accelerate>=1.0,<2",
    "safetensors>=0.4",
    "huggingface-hub>=0.30",
    "evaluate>=0.4,<1",
    "numpy>=1.24",
    "pyarrow>=14",
    "nltk>=3.8",
    "gensim>=4.3",
    "scipy>=1.10",
    "tqdm>=4.60",
]

extras_require = {
    # the figure scripts (examples/plot_curves.py, learning_curve.py) and the web demo (in headless Chromium) are tested
    "test": ["pytest>=8", "matplotlib>=3.7", "gradio>=6,<7", "selenium>=4.20"],
    "train": ["matplotlib>=3.7", "pandas>=2.0"],
    "demo": ["gradio>=6,<7"],  # kgsf demo FOLDER
}
extras_require["all"] = sorted({dep for deps in extras_require.values() for dep in deps})

setup(
    name="kgsf",
    version="0.1.0",
    description="KGSF conversational recommender (KDD 2020) with transformers, PyG, datasets and Accelerate",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_kgsf", "modeling_kgsf.*", "datasets_scripts", "datasets_scripts.*", "training_kgsf", "kgsf_cli"]),
    # the evaluate modules are folders of plain scripts loaded by path (modeling_kgsf.metrics.load_metric)
    package_data={"modeling_kgsf": ["*.json"], "modeling_kgsf.metrics": ["*/*.py"]},
    install_requires=install_requires,
    entry_points={"console_scripts": ["kgsf=kgsf_cli.main:main"]},
    extras_require=extras_require,
    license="MIT",
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
