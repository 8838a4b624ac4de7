"""The loop's checkpointed counters: the clocks' state is saved among them under the names checkpoints have always
used, so checkpoints written before the clocks existed resume with the same train credit and log/eval steps.
(The loop itself is exercised end to end by test_run.py and test_robust.py.)"""

from __future__ import annotations

from types import SimpleNamespace

from r2i.clocks import Every, Ratio
from r2i.loop import Counters, Trainer

# meta["counters"] of a checkpoint written by the loop before it had clocks (every field, in its order)
OLD_COUNTERS = {"env_steps": 120, "policy_steps": 60, "updates": 30, "episodes": 17, "train_credit": 0.75,
                "next_log": 128, "next_eval": 200, "wall_s": 12.5, "recent_success": [1.0, 0.0]}


def _trainer_without_envs() -> SimpleNamespace:
    return SimpleNamespace(counters=Counters(), should_train=Ratio(8, 16), should_log=Every(16),
                           should_eval=Every(100), should_snapshot=Every(300))


def test_old_checkpoint_counters_load_into_the_counters_and_clocks_and_save_back_unchanged():
    trainer = _trainer_without_envs()
    Trainer._load_counters(trainer, OLD_COUNTERS)
    assert (trainer.counters.env_steps, trainer.counters.updates, trainer.counters.recent_success) == (120, 30,
                                                                                                       [1.0, 0.0])
    assert (trainer.should_train.credit, trainer.should_log.next, trainer.should_eval.next) == (0.75, 128, 200)
    assert trainer.should_log.period == 16  # periods come from the config, state from the checkpoint
    saved = Trainer._counters_state(trainer)
    # The old keys come back unchanged and in their order; counters added since follow with their defaults, and the
    # snapshot clock, which they lack, takes its first snapshot at the next evaluation round.
    assert trainer.should_snapshot.next == trainer.should_eval.next == 200
    assert saved == {**OLD_COUNTERS, "last_eval_score": None, "eval_scores": [], "next_snapshot": 200}
    assert list(saved)[: len(OLD_COUNTERS)] == list(OLD_COUNTERS)


def test_counters_without_clock_fields_load_with_fresh_clocks():
    trainer = _trainer_without_envs()
    Trainer._load_counters(trainer, {"env_steps": 8, "updates": 1})
    assert trainer.counters.env_steps == 8 and trainer.should_train.credit == 0.0 and trainer.should_log.next == 0
