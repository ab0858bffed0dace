"""The names of the files and folders a run writes under its output_dir.

Names only, relative to output_dir: a variant's own run (the adversarial fine-tune, a
retrained ensemble member) lays out the same names under its folder. The log (`run.log`, or
`run.<tuner>.log` on a tuner worker) and the non-chief workers' `.workers/` are named by
config/cluster.py, a layer below this one.
"""
from __future__ import annotations

import os

CONFIG_JSON = "config.json"            # the run's configuration and chosen hyperparameters
METRICS_JSON = "metrics.json"
LABELS_TXT = "labels.txt"              # one class name per line
SEARCH_JSON = "search.json"
LR_FIND_JSON = "lr_find.json"          # python -m tftransfer.lr_find, --learning_rate=find
LR_FIND_PNG = "lr_find.png"
BUDGET_JSON = "budget.json"            # time spent against --time_budget, across resumes
COMPRESSION_JSON = "compression.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_FILES = "report_files"          # the report's figures
MODEL_CARD_MD = "model_card.md"        # also in each export's assets/
BEST_WEIGHTS = os.path.join("checkpoints", "best.weights.h5")
BACKUP = "backup"                      # the final training's resumable state
TENSORBOARD = "tensorboard"
SEARCH_TENSORBOARD = os.path.join(TENSORBOARD, "search")
SAVED_MODEL = "saved_model"            # SavedModel versions: saved_model/<version>/
PRUNED_SAVED_MODEL = "pruned_saved_model"
TFLITE = "tflite"                      # tflite/<mode>.tflite
ONNX = "onnx"                          # onnx/classifier.onnx
KERAS_INT8 = "keras_int8"
CACHE = "cache"                        # decoded splits
FEATURES = "features"                  # the search's cached backbone features
SEARCH = "search"                      # KerasTuner's project folder
ENSEMBLE = "ensemble"
ADVERSARIAL = "adversarial"
SCRATCH = "scratch"                    # --compare_scratch: the same model from random weights
# Not a run's: a local backbone folder's description (name, source, licence), written by
# tftransfer.assets beside its saved_model.pb and read into the model card.
BACKBONE_PROVENANCE = "provenance.json"
