"""Self-trained CLIPs: small open_clip models trained from scratch on generated scenes (paper A section 4), and
the same experiment at scale, ``open_clip_train`` under torchrun on webdataset shards (``openclip``)."""

from .config import ORDERS, TrainConfig, TrainingError, conditions
from .loop import TrainedModel, load_run, run_folder, train, train_many
from .openclip import OpenClipResult, OpenClipRun, logs_checkpoints
from .openclip import train as train_openclip

__all__ = ["ORDERS", "conditions", "TrainConfig", "TrainingError", "TrainedModel", "load_run", "run_folder", "train", "train_many",
           "OpenClipResult", "OpenClipRun", "logs_checkpoints", "train_openclip"]
