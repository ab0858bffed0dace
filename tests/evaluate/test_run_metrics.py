"""metrics.json's training block (the rest of run_metrics.evaluate runs in tests/cli)."""
import types

from tftransfer.evaluate import run_metrics


def _trained(best, start=None):
    phase = types.SimpleNamespace(name="head", epochs=2)
    return types.SimpleNamespace(phases=[phase], best_validation_accuracy=best,
                                 start_score=start)


def test_the_training_block_says_whether_the_warm_start_was_beaten():
    start = types.SimpleNamespace(trial_id="03")
    kept = run_metrics._training_block(_trained(0.9, start=0.9), start)
    assert kept["warm_start"] == {"trial_id": "03", "validation_accuracy": 0.9, "kept": True}
    beaten = run_metrics._training_block(_trained(0.95, start=0.9), start)
    assert beaten["warm_start"]["kept"] is False
    cold = run_metrics._training_block(_trained(0.8), None)
    assert "warm_start" not in cold and cold["phases"] == [{"name": "head", "epochs": 2}]
