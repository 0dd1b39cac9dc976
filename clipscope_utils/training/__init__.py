"""Self-trained CLIPs: small open_clip models trained from scratch on generated scenes (paper A section 4)."""

from .config import ORDERS, TrainConfig, TrainingError, conditions
from .loop import TrainedModel, load_run, run_folder, train, train_many

__all__ = ["ORDERS", "conditions", "TrainConfig", "TrainingError", "TrainedModel", "load_run", "run_folder", "train", "train_many"]
