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


def test_each_finished_seed_appends_a_row_with_its_commit(tmp_path, monkeypatch):
    """`--csv`: one row per seed that finished (not per error), with the overrides and the commit of the code; columns
    added since a file was written are added to it, its old rows blank there."""
    import csv

    from r2i.bench import solve

    def fake_seed(seed, root, preset, threshold, eval_every, extra, runner, to_budget=False):
        if seed == 2:
            return {"bench": "solve", "seed": seed, "error": "boom", "returncode": 1}
        return {"bench": "solve", "seed": seed, "preset": preset, "solved": seed == 0, "env_steps_to_success": 6004
                if seed == 0 else None, "wall_s_to_success": 80.0 if seed == 0 else None, "env_steps": 12000,
                "final_success": 1.0 if seed == 0 else 0.47, "eval_episodes": 32}

    monkeypatch.setattr(solve, "run_seed", fake_seed)
    monkeypatch.setattr(solve, "source_commit", lambda: "abc1234567")
    path = tmp_path / "seeds.csv"
    path.write_text("preset,overrides,seed,solved,env_steps_to_success,env_steps,final_success,eval_episodes,commit\n"
                    "default,,9,True,5004,5004,1.0,32,0000000000\n")
    solve.run([0, 1, 2], tmp_path / "runs", "default", 0.95, 1000, 1, ["behavior.entropy=0.01"], csv_path=path)
    rows = list(csv.DictReader(path.open()))
    assert [r["seed"] for r in rows] == ["9", "0", "1"]
    assert rows[0]["commit"] == "0000000000" and rows[0]["wall_s_to_success"] == ""
    assert rows[1] == {"preset": "default", "overrides": "behavior.entropy=0.01", "seed": "0", "solved": "True",
                       "env_steps_to_success": "6004", "env_steps": "12000", "final_success": "1.0",
                       "eval_episodes": "32", "commit": "abc1234567", "wall_s_to_success": "80.0", "jobs": "1",
                       "wall_s": "", "to_budget": "False"}
    assert rows[2]["solved"] == "False" and rows[2]["env_steps_to_success"] == ""


def test_to_budget_trains_past_the_threshold(tmp_path):
    """`--to-budget` drops `run.stop_at_success` from the training command, so the whole run is timed; without it the
    run stops at the threshold."""
    from r2i.bench.solve import run_seed

    commands = []

    def runner(cmd, **_):
        commands.append(cmd)

        class Failed:
            returncode, stderr = 1, "stopped here\n"

        return Failed()

    run_seed(0, tmp_path / "a", "default", 0.95, 1000, ["run.steps=3000"], runner)
    run_seed(0, tmp_path / "b", "default", 0.95, 1000, ["run.steps=3000"], runner, to_budget=True)
    assert "run.stop_at_success=0.95" in commands[0] and commands[0][-1] == "run.steps=3000"
    assert not any(arg.startswith("run.stop_at_success") for arg in commands[1]) and "run.eval_every=1000" in commands[1]
