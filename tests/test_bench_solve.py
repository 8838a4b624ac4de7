"""`r2i bench solve` reads time-to-success from a finished run's own files."""

import json

from r2i.bench.solve import read_run


def test_read_run_finds_the_first_evaluation_at_the_threshold(tmp_path):
    rows = [{"step": 1000, "time": 110.0, "model/loss": 1.0}, {"step": 1000, "time": 111.0, "eval/success": 0.5},
            {"step": 2000, "time": 150.0, "eval/success": 0.97}, {"step": 2000, "time": 151.0, "eval/success": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "result.json").write_text(json.dumps({"updates": 500, "env_steps": 2004}))
    out = read_run(tmp_path, start=100.0, threshold=0.95)
    assert out["solved"] and out["env_steps_to_success"] == 2000 and out["wall_s_to_success"] == 50.0
    assert out["final_success"] == 1.0 and out["evals"] == [[1000, 0.5], [2000, 0.97], [2000, 1.0]]
    assert read_run(tmp_path, start=100.0, threshold=1.01)["solved"] is False
