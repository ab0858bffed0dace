"""The final training's callbacks: early stopping across a resume; the deadline's stop."""
import time

import keras
import numpy as np

from tftransfer.train import callbacks


def _early_stopping_epochs(state_path, model, epochs_and_accuracies, resumed_at=None):
    """Drives a ResumableEarlyStopping through one fit's epochs; True if it stopped."""
    model._initial_epoch = resumed_at  # what BackupAndRestore sets on a resume
    model.stop_training = False
    callback = callbacks.ResumableEarlyStopping(str(state_path), monitor="val_accuracy",
                                                mode="max", patience=2)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, accuracy in epochs_and_accuracies:
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"val_accuracy": accuracy})
    return model.stop_training


def test_early_stopping_patience_survives_a_resume(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    state = tmp_path / "early_stopping.json"
    assert not _early_stopping_epochs(state, model, [(0, 0.9), (1, 0.8)])  # killed after 1
    # Resumed at epoch 2: one more epoch without improvement exhausts the patience of 2.
    assert _early_stopping_epochs(state, model, [(2, 0.85)], resumed_at=2)
    # A fit that did not resume (a new phase) counts afresh.
    assert not _early_stopping_epochs(state, model, [(2, 0.85)])
    # A saved count from another epoch is not taken over.
    _early_stopping_epochs(state, model, [(0, 0.9), (1, 0.8)])
    assert not _early_stopping_epochs(state, model, [(5, 0.85)], resumed_at=5)


def test_stop_at_deadline_ends_the_fit_before_an_epoch_that_would_overrun():
    class SlowEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(3.0 if epoch == 0 else 0.2)   # the first: 2.5 s of tracing too

    def epochs_run(seconds_left, trace_seconds=0.0):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        deadline = callbacks.Deadline(time.time() + seconds_left, trace_seconds)
        history = model.fit(np.zeros((8, 2)), np.zeros((8, 1)), epochs=5, verbose=0,
                            callbacks=[SlowEpochs(), callbacks.StopAtDeadline(deadline)])
        return len(history.epoch)
    assert epochs_run(5.5) == 1        # another 3 s epoch would end after 5.5 s
    assert epochs_run(5.5, trace_seconds=2.5) >= 2     # the next ones take 0.2 s
    assert epochs_run(60) == 5
