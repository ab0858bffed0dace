from tftransfer.report import compression_table


def _variant(name, accuracy, drop, flagged, size=3 * 2**20):
    return {"variant": name, "accuracy": accuracy, "accuracy_drop": drop, "flagged": flagged,
            "macro_f1": accuracy - 0.01, "size_bytes": size, "gzip_size_bytes": size // 2,
            "latency_p50_ms": 1.234, "throughput_images_per_s": 812.4}


RESULT = {
    "split": "test", "num_examples": 10000, "baseline": "saved_model", "tolerance": 0.01,
    "serving_batch": 64, "device": "CPU: test (2 cores)",
    "variants": [_variant("saved_model", 0.93, 0.0, False),
                 _variant("tflite_int8", 0.925, 0.005, False, size=4000),
                 _variant("pruned", 0.91, 0.02, True)],
    "skipped": [{"variant": "keras_int8", "reason": "no Dense or EinsumDense layer"}],
    "pruning": {"pruned_kernels": ["a", "b"], "pruned_weights": 1000, "sparsity": 0.5,
                "target_sparsity": 0.5, "variables_gzip_bytes": 2 * 2**20,
                "float_variables_gzip_bytes": 3 * 2**20},
}


def test_rows_are_formatted_and_flagged():
    header, rows = compression_table.table(RESULT)
    assert header[:3] == ["variant", "accuracy", "change"] and len(header) == len(rows[0])
    assert rows[0] == ["saved_model", "93.00%", "+0.00 pt", "0.9200", "3.00 MB", "1.50 MB",
                       "1.23", "812", ""]
    assert rows[1][2] == "-0.50 pt" and rows[1][4] == "3.9 KB" and rows[1][-1] == ""
    assert rows[2][2] == "-2.00 pt" and rows[2][-1] == "**flagged**: lost more than 1 pt"


def test_markdown_has_the_table_and_the_notes():
    text = compression_table.markdown_table(RESULT)
    assert "| variant | accuracy | change |" in text
    assert "| pruned | 91.00% | -2.00 pt |" in text
    assert "Test split (10000 images)" in text and "batch 64, on CPU: test (2 cores)" in text
    assert "Skipped keras_int8: no Dense or EinsumDense layer" in text
    assert ("Pruned 2 kernels (1000 weights) to 50.0% sparsity (target 50%); gzipped "
            "weights 2.00 MB against 3.00 MB unpruned.") in text
