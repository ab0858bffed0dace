"""`python -m tftransfer.run --flagfile=F [--flag=value ...]`: one transfer-learning run.

Wires the stages: flags -> config -> data -> model -> train -> evaluate -> export.
A UserError (bad flag, data or handle) ends the run with one line and exit status 2.
"""
from __future__ import annotations

import dataclasses
import logging as std_logging
import os
import time

from absl import logging

from tftransfer.cli import common, flags as flags_lib
from tftransfer.config import cluster
from tftransfer.config.run_config import FIND_LEARNING_RATE
from tftransfer.outputs import files as atomic, folder_lock, run_folder


def _log_to_file(output_dir: str, name: str) -> None:
    """`name`: cluster.log_file_name(), as tuner workers share the chief's output_dir."""
    handler = std_logging.FileHandler(os.path.join(output_dir, name))
    handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.get_absl_logger().addHandler(handler)


def _write_metrics(output_dir: str, metrics: dict) -> None:
    atomic.write_json(os.path.join(output_dir, run_folder.METRICS_JSON), metrics, indent=2,
                      sort_keys=True)


def _publish(cfg, metrics: dict, predictions: dict, data, export_dir: str) -> None:
    """TensorBoard pictures and summaries, then report.md/.html and model_card.md (also into
    the exports' assets/), from the final metrics: last, as the card needs every stage's."""
    from tftransfer.config import run_config as config_lib
    from tftransfer.report import model_card, report, summaries

    images, labels = next(iter(data.train))
    figures = report.run_figures(metrics, data.class_names, images.numpy(), labels.numpy())
    splits = {s: metrics[s] for s in ("validation", "test") if s in metrics}
    if "multi_label" in metrics:  # its predictions are multi-hot: no single-label summaries
        splits, predictions = {}, {}
    last_epoch = sum(p["epochs"] for p in metrics["training"]["phases"])
    summaries.write_run_summaries(os.path.join(cfg.output_dir, run_folder.TENSORBOARD),
                                  config_lib.to_flat(cfg), splits, predictions,
                                  data.class_names, figures, step=last_epoch,
                                  calibration=metrics.get("calibration"),
                                  multi_label=metrics.get("multi_label"))
    report.write_report(cfg.output_dir, figures)
    model_card.write_model_cards(cfg.output_dir, export_dir)


@dataclasses.dataclass
class RunOutputs:
    metrics: dict
    classifier: object      # model.classifier.TransferClassifier
    data: object            # data.DataBundle
    export_dir: str


def start_strategy(cfg):
    """The strategy (first: MultiWorkerMirroredStrategy must exist before any other
    TensorFlow op runs), seeds, determinism and precision."""
    import keras
    import tensorflow as tf

    from tftransfer.distribute import strategy as distribute

    strategy = distribute.make_strategy(cfg.strategy, cfg.data.batch_size)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.train.mixed_precision:
        gpu = bool(tf.config.list_logical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "mixed_bfloat16")
    return strategy


def _search(cfg, data, strategy, search_budget=None):
    """Searches; returns (cfg with the best values, the data its training reads, the
    SearchResult), or None on a tuner worker, which only runs trials: the search's chief
    trains and exports the best."""
    import keras

    from tftransfer.data import pipeline as data_lib
    from tftransfer.search import tuning as search

    found = search.run_search(cfg, data, strategy, search_budget)
    if cluster.is_tuner_worker():
        return None
    final_cfg = search.apply_values(cfg, found.best_values)
    final_data = data_lib.at_image_size(data, final_cfg.data, final_cfg.seed,
                                        os.path.join(cfg.output_dir, run_folder.CACHE),
                                        strategy.num_replicas_in_sync)
    # The final training must not depend on how many trials ran in this process (a
    # resumed search runs fewer).
    keras.utils.set_random_seed(final_cfg.seed)
    return final_cfg, final_data, found


NO_SEARCH_HINT = ("No search: the run trains its flags' configuration. Add "
                  "--time_budget=20m (or any budget) to search within it, or --search=random.")


def _plan(cfg, data, strategy, ledger):
    """A budgeted run's plan (search.planning.BudgetedRun), or None without a budget and
    on a tuner worker, whose trials the chief's oracle hands out within the budget."""
    if ledger is None or cluster.is_tuner_worker():
        return None
    from tftransfer.search import planning

    return planning.plan(cfg, data, strategy, ledger)


def _load_and_search(cfg, strategy, ledger=None):
    """The data, the budget's plan, and the search when one is asked for (and the budget
    holds it): returns (the config the final training follows, the data it reads, the
    SearchResult or None, the plan or None), or None on a tuner worker."""
    from tftransfer.data import pipeline as data_lib

    from tftransfer.config import run_config as config_lib

    data = data_lib.load_data(cfg.data, cfg.seed,
                              os.path.join(cfg.output_dir, run_folder.CACHE),
                              strategy.num_replicas_in_sync,
                              config_lib.native_image_size(cfg.backbone))
    atomic.write_text(os.path.join(cfg.output_dir, run_folder.LABELS_TXT),
                      "".join(f"{name}\n" for name in data.class_names))
    if data.multi_label:  # a TFDS sequence label is only known now (--labels_csv: validated)
        from tftransfer.config import multi_label_options

        multi_label_options.refuse_single_label_options(cfg)
    # --image_size=0 becomes the size the data was resized to; a search may change it.
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                            image_size=data.image_size))
    if cfg.train.learning_rate == FIND_LEARNING_RATE:
        from tftransfer.cli import lr_find

        cfg = lr_find.with_found_rate(cfg, data, strategy)
    budgeted = _plan(cfg, data, strategy, ledger)
    if budgeted is not None and budgeted.cfg.data.image_size != cfg.data.image_size:
        cfg = budgeted.cfg
        data = data_lib.at_image_size(data, cfg.data, cfg.seed, os.path.join(
            cfg.output_dir, run_folder.CACHE), strategy.num_replicas_in_sync)
    if budgeted is not None and not budgeted.searching:
        return cfg, data, None, budgeted
    if cfg.search.search == "none":
        logging.info(NO_SEARCH_HINT)
        return cfg, data, None, None
    searched = _search(cfg if budgeted is None else budgeted.search_cfg, data, strategy,
                       None if budgeted is None else budgeted.search_budget)
    if searched is None:
        return None
    if ledger is not None:
        ledger.end_stage("search")
    return (*searched, budgeted)


def _train(cfg, data, strategy, deadline=None, warm_start=None):
    """`warm_start`: the chosen trial's weights to start from (search.carry_over)."""
    from tftransfer.model import classifier as model_lib
    from tftransfer.search import carry_over
    from tftransfer.train import training as train_lib

    with strategy.scope():
        classifier = model_lib.build_model(cfg, data.num_classes,
                                           multi_label=data.multi_label)
        to_beat = carry_over.apply(classifier, warm_start)
        trained = train_lib.train(classifier, classifier.backbone, data, cfg, deadline,
                                  to_beat)
    return classifier, trained


def _export(cfg, classifier, data, trained, thresholds=None) -> tuple[str, dict]:
    """The SavedModel (with --export_tta, of the flip-averaged classifier): (its folder,
    metrics.json's `performance` block). `thresholds`: a multi-label run's, baked into the
    export."""
    from tftransfer.export import measure, saved_model as export, serving_warmup as warmup
    from tftransfer.model import tta

    exported = tta.for_export(classifier, cfg.export.export_tta)
    export_dir = export.export_saved_model(
        exported, data.class_names, cfg.data.image_size, classifier.backbone.module,
        os.path.join(cfg.output_dir, run_folder.SAVED_MODEL), version=cfg.export.export_version,
        warmup_images=warmup.validation_images(data, cfg.export.warmup_requests),
        thresholds=thresholds)
    performance = measure.performance_block(exported, export_dir, cfg.data.image_size,
                                            serving_batch=cfg.data.batch_size)
    performance["training_images_per_second"] = {
        p.name: p.images_per_second for p in trained.phases}
    return export_dir, performance


def _compress(cfg, classifier, data, export_dir: str) -> None:
    """The compressed models, into compression.json."""
    from tftransfer.compress import compression

    compression.compress_and_evaluate(classifier, data, cfg, export_dir)


def _variants(cfg, classifier, data, metrics: dict, found, strategy) -> dict:
    """metrics.json's blocks for the robustness of the main model, the ensemble, the
    adversarially fine-tuned copy and the model from scratch, and their side-by-side
    `comparison` with `metrics`."""
    from tftransfer.evaluate import robustness
    from tftransfer.report import comparison
    from tftransfer.variants import evaluation as variants

    blocks = {}
    if cfg.robustness.robustness_eval:
        blocks["robustness"] = robustness.evaluate_robustness(classifier, data, cfg)
    if found is not None and cfg.ensemble.ensemble_top_k:
        blocks["ensemble"] = variants.ensemble_variant(classifier, found,
                                                       data, cfg, strategy)
    if cfg.adversarial.adversarial != "none":
        blocks["adversarial"] = variants.adversarial_variant(classifier, data, cfg)
    if cfg.train.compare_scratch:
        blocks["scratch"] = variants.scratch_variant(data, cfg, strategy, metrics["training"])
    return {**blocks, "comparison": comparison.rows({**metrics, **blocks})}


def _ledger(cfg, started: float | None):
    """The account of a budgeted run's time (outputs/ledger.py), or None without a budget."""
    if not cfg.search.time_budget or cluster.is_tuner_worker():
        return None  # a tuner worker's trials end when the chief's oracle refuses more
    from tftransfer.config import budget as budget_lib
    from tftransfer.outputs.ledger import Ledger

    ledger = Ledger(cfg.output_dir, budget_lib.parse_duration(cfg.search.time_budget), started)
    ledger.keep_recording()  # a killed attempt is charged up to its last few seconds
    return ledger


def _sized_to_budget(budgeted, cfg, found):
    """(the final config with its epochs sized to the time left, the training deadline)."""
    if budgeted is None:
        return cfg, None
    from tftransfer.search import planning

    final_cfg = planning.final_config(budgeted, cfg, None if found is None else found.trials)
    return final_cfg, planning.training_deadline(budgeted, final_cfg)


def _budget_block(budgeted, final_cfg) -> dict:
    if budgeted is None:
        return {}
    from tftransfer.search import planning

    return {"budget": planning.block(budgeted, final_cfg)}


def run(cfg, started: float | None = None) -> RunOutputs | None:
    """Runs every stage for a validated config; writes the outputs to cfg.output_dir.
    `started`: when the process started (time.time()), charged to a --time_budget.
    Returns None on a distributed search's tuner worker."""
    strategy = start_strategy(cfg)
    ledger = _ledger(cfg, started)
    prepared = _load_and_search(cfg, strategy, ledger)
    if prepared is None:
        return None
    final_cfg, data, found, budgeted = prepared
    final_cfg, deadline = _sized_to_budget(budgeted, final_cfg, found)
    atomic.write_config(os.path.join(final_cfg.output_dir, run_folder.CONFIG_JSON), final_cfg,
                        chosen_hyperparameters=None if found is None else found.best_values)
    warm_start = None if found is None else found.warm_start
    classifier, trained = _train(final_cfg, data, strategy, deadline, warm_start)
    if ledger is not None:
        ledger.end_stage("final training")
    from tftransfer.evaluate import run_metrics

    classifier, metrics, predictions = run_metrics.evaluate(
        classifier, data, trained, final_cfg.train.calibrate, final_cfg.train.tta, warm_start)
    if cfg.train.learning_rate == FIND_LEARNING_RATE:
        metrics["lr_find"] = atomic.read_json(os.path.join(cfg.output_dir,
                                                           run_folder.LR_FIND_JSON))
    # Rewritten as each stage adds its blocks: a later crash leaves the earlier ones on disk.
    _write_metrics(final_cfg.output_dir, metrics)
    export_dir, performance = _export(
        final_cfg, classifier, data, trained,
        list(metrics["multi_label"]["thresholds"].values()) if data.multi_label else None)
    if ledger is not None:
        ledger.end_stage("evaluation and export")
    metrics = {**metrics, "performance": performance, **_budget_block(budgeted, final_cfg)}
    _write_metrics(final_cfg.output_dir, metrics)
    _compress(final_cfg, classifier, data, export_dir)
    metrics = {**metrics, **_variants(final_cfg, classifier, data, metrics, found, strategy)}
    _write_metrics(final_cfg.output_dir, metrics)
    _publish(final_cfg, metrics, predictions, data, export_dir)
    if ledger is not None:
        ledger.end_stage("compression, variants and report")
        ledger.finish()
        logging.info("Time budget: %.0f s of %.0f s spent; by stage %s", ledger.spent(),
                     ledger.budget, {k: round(v, 1) for k, v in ledger.stages.items()})
    logging.info("Test accuracy %s; performance %s",
                 metrics.get("test", {}).get("accuracy"), metrics["performance"])
    return RunOutputs(metrics, classifier, data, export_dir)


def main(argv) -> None:
    started = time.time()  # before TensorFlow starts: its start-up counts against a budget
    if len(argv) > 1:
        common.fail(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    with common.user_errors():
        cfg = flags_lib.config_from_flags()
        common.start_tensorflow()
        cluster.export_tuner_flags(cfg.search.tuner_id, cfg.search.oracle_address)
        with cluster.writer_output_dir(cfg) as cfg:  # non-chief workers: a private folder
            lock = folder_lock.hold(cfg.output_dir, cluster.log_file_name()[:-len(".log")])
            _log_to_file(cfg.output_dir, cluster.log_file_name())
            run(cfg, started)
            lock.close()


def entry_point() -> None:
    common.start(main, flags_lib.define_flags)


if __name__ == "__main__":
    entry_point()
