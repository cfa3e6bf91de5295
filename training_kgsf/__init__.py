"""The training floor of kgsf: the Accelerate stage loop and the three stages of Algorithm 1, the
evaluation of a trained folder, model cards and the baselines' training.

It joins the data floor (``datasets_scripts``: raw files -> rows) and the model floor
(``modeling_kgsf``); neither imports it, so a ``trust_remote_code`` folder or an inference-only
install does not need it. Import each name from the module that defines it (docs/DESIGN.md, "Floors")::

    from training_kgsf.stages import pretrain_mim, train_recommender, train_conversation
    from training_kgsf.evaluate_folder import evaluate_model
    from training_kgsf.trainer import StageTrainer, TrainingArguments
    from training_kgsf.data import DataArguments, KGSFData
    from training_kgsf.building import ModelArguments, build_model
    from training_kgsf.baselines import train_redial, train_kbrd
"""
