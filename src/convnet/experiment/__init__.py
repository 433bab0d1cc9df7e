"""From a run's configuration to its objects, and from a run folder, a zoo model or an ONNX file back
to a model, one concept per module:

- `config`: `RunConfig`, a run's settings, the choices they take and the defaults they leave;
- `recipes`: named bundles of settings (``--recipe``), each measured;
- `sources`: what ``--data PATH`` holds (IDX, CIFAR, an image folder, a CSV manifest), its datasets,
  and what a run records of them;
- `build`: the loaders, model, optimizer, schedule and trainer a configuration makes;
- `run`: `start` a run (its epochs planned to fit a time budget, its weights taken from elsewhere),
  `resume` it, `load_run` its model;
- `loaded_model`, `load`, `onnx_file`: `load_model` makes a `LoadedModel` of a run folder, a zoo
  model or an ONNX file for ``evaluate``, ``predict``, ``summary``, ``show`` and ``export``;
- `scoring`: a loaded model's figures on a test set and its answers for image files;
- `show_input`: what ``convnet show`` draws (`ModelOnImage`).
"""

from .build import build_model, build_trainer, evaluation_loader, make_optimizer, make_schedule, train_transform
from .config import (AUGMENTATION_STEPS, AUGMENTATIONS, DATASETS, DEFAULT_AUGMENT, DEFAULT_LR, DEFAULT_WEIGHT_DECAY,
                     MIRRORING_DATASETS, OPTIMIZERS, SCHEDULES, RunConfig)
from .recipes import RECIPES
from .sources import DataChanged, DataNotRecorded, data_kind, load_datasets, recorded_input
from .load import export_onnx, load_model
from .loaded_model import IMAGE_SHAPE, LoadedModel
from .onnx_file import (ONNX_CLASSES, ONNX_DATASET, ONNX_NORMALIZATION, ONNX_PREPROCESSING, ONNX_TEST_MIRROR,
                        ONNX_TEST_TRANSLATE, ONNX_VAL_SPLIT, load_onnx_file)
from .run import PROBE_STEPS, PROBE_WARMUP, Run, RunExists, initial_weights, load_run, plan_epochs, resume, start
from .scoring import Classifier, evaluate_model, evaluate_run
from .show_input import LESSON_IMAGE, ModelOnImage, lesson_on_image, model_on_image

__all__ = ["RunConfig", "RECIPES", "AUGMENTATION_STEPS", "AUGMENTATIONS", "DEFAULT_AUGMENT", "DEFAULT_LR", "DEFAULT_WEIGHT_DECAY",
           "MIRRORING_DATASETS", "OPTIMIZERS", "SCHEDULES", "DATASETS", "DataChanged", "DataNotRecorded", "data_kind",
           "recorded_input", "build_model", "build_trainer",
           "evaluation_loader", "load_datasets", "make_optimizer", "make_schedule", "train_transform", "Run",
           "RunExists", "start", "resume", "plan_epochs", "PROBE_WARMUP", "PROBE_STEPS", "initial_weights",
           "load_run", "IMAGE_SHAPE", "LoadedModel", "load_model", "export_onnx", "load_onnx_file", "ONNX_DATASET",
           "ONNX_NORMALIZATION", "ONNX_CLASSES", "ONNX_TEST_MIRROR", "ONNX_TEST_TRANSLATE", "ONNX_PREPROCESSING",
           "ONNX_VAL_SPLIT",
           "evaluate_run", "evaluate_model", "Classifier",
           "ModelOnImage", "LESSON_IMAGE", "lesson_on_image", "model_on_image"]
