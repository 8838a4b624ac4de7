#!/usr/bin/env bash
# The memory-frontier runs still to do (BSuite memory_len past 150, discounting_chain, POPGym), as lanes of
# `r2i sweep` commands that go on across sessions and machines: each lane runs its jobs in order, a job skips the runs
# its CSV already records, and a stopped run resumes from its checkpoint (or, on a fresh clone, from its archive in
# benchmarks/carry/). Lanes side by side on a 2-core CPU, one XLA thread each (`run.cpu_threads=1`).
#
#   benchmarks/frontier.sh lane1 &    # discounting-chain delays 1-30, the GRU at 512 (seed 0), heads on (h, z)
#   benchmarks/frontier.sh lane2 &    # both models at 75, S3M and the GRU's seed 1 at 512, the GRU at 1,024, ...
#   benchmarks/frontier.sh lane3 &    # POPGym, γ = 1 − 1/2000, delay 100, the GRU's seed 2 at 512, the mode at 200
#   benchmarks/frontier.sh lane4 &    # S3M at 512 (ratio 128; unmasked, then masked), masked at 1,024, S3M at 1,024
#   benchmarks/frontier.sh only lane1 JOB... &  # just those jobs, in order, as lane 1 (for `stop`), not its list
#   benchmarks/frontier.sh status     # `r2i sweep --status` of every job: training, packed, solved, ...
#   benchmarks/frontier.sh stop       # SIGTERM to the lanes: their trainings checkpoint and exit
#   benchmarks/frontier.sh pack       # then: every unfinished run into benchmarks/carry/ (commit those archives)
#   benchmarks/frontier.sh jobs       # every lane's jobs and the parked ones (`args JOB`: one job's sweep arguments)
#
# R2I is the r2i command (default `r2i`); to train with another checkout's code while editing this one, e.g.
#   R2I="env PYTHONPATH=/path/to/worktree/src r2i" benchmarks/frontier.sh lane1 &
# Rows, figures and archives always go to the benchmarks/ folder this script is in.
set -uo pipefail
B=$(cd "$(dirname "$0")" && pwd)
R2I=${R2I:-r2i}
# The length-75-to-150 settings (benchmarks/README.md, "The memory frontier: runs in progress").
HIDDEN="run.eval_episodes=100 run.eval_every=2000 run.stop_at_success=0.95 model.policy_inputs=hidden \
behavior.entropy=1e-2 model.head_inputs=full"
DC="run.eval_episodes=100 run.eval_every=2000 run.stop_at_success=0.95 run.steps=30000"

job() {  # the `r2i sweep` arguments of one job
    case $1 in
        # The lead of docs/notes.md ("Sampling noise hides the cue at 200"): the sequence model reads the latent's
        # probabilities, not its sample (seed 0 solved 200 at 18,004 env steps).
        # S3M's third seed first; the GRU at the same settings after it (two jobs, one root and CSV). probs200s3m34:
        # S3M's seeds 3 and 4, the unmasked side of the cut200 A/B at five seeds.
        probs200s3m|probs200gru|probs200s3m34) seeds=0,1,2; model=${1#probs200}
            [ "$1" = probs200s3m34 ] && seeds=3,4 && model=s3m
            echo "--suite memory_len --settings 200 --models $model --seeds $seeds \
--root $B/runs/probs_200 --carry $B/carry/probs_200 --csv $B/results/memory_len_probs.csv $HIDDEN \
model.latent_input=probs run.steps=150000" ;;
        # The sequence model reading the latent's one-hot mode: no sampling noise in the filtered state, as with
        # probabilities, without S3M's imagination leaving the data after a few steps (docs/notes.md, "Imagination
        # leaves the data when S3M reads probabilities"). Both models, seeds 0-2, at 200.
        mode200s3m|mode200gru) echo "--suite memory_len --settings 200 --models ${1#mode200} --seeds 0,1,2 \
--root $B/runs/mode_200 --carry $B/carry/mode_200 --csv $B/results/memory_len_mode.csv $HIDDEN \
model.latent_input=mode run.steps=150000" ;;
        # Windows of 2,048 steps at B = 1; reading samples, ≈ 750,000 env steps were expected (benchmarks/README.md).
        # The GRU reading probabilities solved 200 too, so both go to 512 (the issue: until one of them fails). S3M's
        # seed 0 solved 512 at 342,004: three seeds at the longest length it solves (the issue); seed 2 is its own job
        # (probs512s3m2, same root and CSV) so that it can run in another lane than seed 1.
        # Budget: S3M's seeds 0 and 1 ran under 1,000,000. The runs still going (S3M's seed 2, the GRU) stop at
        # 350,000, just above S3M's slower solve (342,004), the same for both models: at the GRU's ≈ 3 env steps/s
        # beside two other lanes 1,000,000 would take ≈ 90 h of lane time, 350,000 ≈ 30 h. The GRU's seeds are a job
        # each (probs512gru: seed 0, probs512gru1: seed 1, probs512gru2: seed 2) so that they run side by side, in
        # lanes 1, 2 and 3: three seeds at the longest length S3M solves (the issue), for both models.
        probs512s3m|probs512gru|probs512s3m2|probs512gru[12]) seeds=0,1; model=${1#probs512}; budget=350000
            [ "$1" = probs512s3m ] && budget=1000000
            [ "$1" = probs512s3m2 ] && seeds=2 && model=s3m
            [ "$1" = probs512gru ] && seeds=0
            case $1 in probs512gru?) seeds=${1: -1}; model=gru ;; esac
            echo "--suite memory_len --settings 512 --models $model --seeds $seeds \
--root $B/runs/probs_512 --carry $B/carry/probs_512 --csv $B/results/memory_len_probs.csv $HIDDEN \
model.latent_input=probs run.steps=$budget" ;;
        # 1,024 at the settings where both models solved 512 (the GRU's seed 1 at 36,004 env steps, S3M's seeds 0 and 1
        # at 342,004 and 68,004): the issue's "until one of them fails". Windows of 4,096 at B 1, the sweep's budget
        # 10,000 + 400·N = 419,600 env steps, pinned since the sweep's rule grew past batch 1 (to 1,678,400 at 1,024):
        # the runs began under it, and at ratio 512 it buys 52,450 updates, what the new rule buys at ratio 128. One
        # root and CSV for both models.
        probs1024gru|probs1024s3m) echo "--suite memory_len --settings 1024 --models ${1#probs1024} --seeds 0,1 \
--root $B/runs/probs_1024 --carry $B/carry/probs_1024 --csv $B/results/memory_len_probs.csv $HIDDEN \
model.latent_input=probs run.steps=419600" ;;
        # The episode a training window's start cuts into left out of the reward loss and the imagination starts
        # (model.mask_cut_episodes): at 200, windows of 512 steps, 4 in 10 of the queries a window holds lack their cue
        # (docs/notes.md, "Windows cut episodes"). S3M reading probabilities, seeds 0-2, against probs200s3m's rows:
        # seeds 0 and 2 in one lane (cut200s3m), seed 1 in another (cut200s3m1); one root and CSV. Seeds 0 and 1
        # solved at 16,004 and 14,004 (unmasked: 18,004 and 62,004), so both sides get seeds 3 and 4 (cut200s3m34,
        # probs200s3m34).
        cut200s3m|cut200s3m1|cut200s3m34|cut200gru) seeds=0,1,2; model=${1#cut200}
            [ "$1" = cut200s3m ] && seeds=0,2
            [ "$1" = cut200s3m1 ] && seeds=1 && model=s3m
            [ "$1" = cut200s3m34 ] && seeds=3,4 && model=s3m
            echo "--suite memory_len --settings 200 --models $model --seeds $seeds \
--root $B/runs/cut_200 --carry $B/carry/cut_200 --csv $B/results/memory_len_cut.csv $HIDDEN \
model.latent_input=probs model.mask_cut_episodes=true run.steps=150000" ;;
        # Levers against the reward head's recall (docs/notes.md, "Train ratio 128"): on the replay's episodes S3M's
        # reward head predicts the replayed reward whichever answer is given (it recognises the episode), so
        # imagination shows the actor little advantage for the right answer. One change each to probs200s3m's
        # settings, one root and CSV per lever: lever200tr128 replays each env step 128 times instead of 512
        # (run.train_ratio; S3M seeds 0-4, as the ratio-512 rows it is compared with), lever200hout gives the reward and
        # continue heads R2I's inputs (h, z) instead of (h, z, x) (S3M seeds 0-2). lever512tr128 takes ratio 128 to 512
        # (S3M seeds 0-2, budget 350,000 as probs512s3m2), lever512tr128gru0 and lever512tr128gru1 the GRU there (one
        # job per seed, one root and CSV; parked, in no lane, since 2026-12-06); lever200tr128gru the GRU at 200 at
        # ratio 128 (against its ratio-512 rows in memory_len_probs.csv), so that the ratio is compared on both models
        # before any preset takes it.
        lever200tr128|lever200tr128gru|lever200hout|lever512tr128|lever512tr128gru[01]) tag=${1#lever???}
            tag=${tag%gru*}; length=${1:5:3}; budget=150000; seeds=0,1,2; model=s3m
            [ "$length" = 512 ] && budget=350000
            [ "$1" = lever200tr128 ] && seeds=0,1,2,3,4
            # The GRU at 200 at ratio 128: two seeds (both stalled on the XOR, docs/notes.md "The GRU at ratio 128
            # stalls"); its third seed's lane time went to the GRU's third seed at 512 (2026-12-06).
            [ "$1" = lever200tr128gru ] && seeds=0,1
            case $1 in *gru) model=gru ;; *gru?) seeds=${1: -1}; model=gru ;; esac
            case $tag in tr128) change="$HIDDEN run.train_ratio=128" ;;
                hout) change="${HIDDEN/model.head_inputs=full/model.head_inputs=output}" ;; esac
            echo "--suite memory_len --settings $length --models $model --seeds $seeds --root $B/runs/lever_${length}_$tag \
--carry $B/carry/lever_${length}_$tag --csv $B/results/memory_len_lever_$tag.csv $change model.latent_input=probs \
run.steps=$budget" ;;
        # model.mask_cut_episodes at 512 with ratio 128 (S3M seeds 0-2, budget 350,000): at 200 all five masked heads
        # read the cue on new episodes (sign accuracy 0.90-1.00; unmasked 0.35-1.00), at 512 one unmasked head of four
        # did (docs/notes.md, "New episodes tell memory from recall").
        cut512s3m) echo "--suite memory_len --settings 512 --models s3m --seeds 0,1,2 --root $B/runs/cut_512_tr128 \
--carry $B/carry/cut_512_tr128 --csv $B/results/memory_len_cut_tr128.csv $HIDDEN model.latent_input=probs \
model.mask_cut_episodes=true run.train_ratio=128 run.steps=350000" ;;
        # cut512s3m with 1,024 imagination starts an update instead of the preset's 256 (seeds 0-2, budget 350,000;
        # its own root and CSV). The lead (docs/notes.md, "Imagined queries"): a start reaches the query within the
        # 15-step horizon from the last ≈ 16 of an episode's N + 2 steps, so 256 starts give ≈ 20 such rollouts an
        # update at 200, 8 at 512 and 4 at 1,024; at ratio 128 the updates to a solve grew in proportion (42,000-96,000
        # imagined queries to a solve at every length), while the world model learns the cue in a fraction of them.
        # 1,024 starts cost 1.8-2.2x the update at B 1 × T 2,048 (benchmarks/results/imag_starts.jsonl).
        starts512) echo "--suite memory_len --settings 512 --models s3m --seeds 0,1,2 --root $B/runs/starts_512 \
--carry $B/carry/starts_512 --csv $B/results/memory_len_starts1024.csv $HIDDEN model.latent_input=probs \
model.mask_cut_episodes=true run.train_ratio=128 behavior.imag_starts=1024 run.steps=350000" ;;
        # The same settings at 1,024 memory steps (windows of 4,096 at B 1; the sweep's budget, 10,000 + 400·N =
        # 419,600 env steps, pinned: the sweep's rule now gives 1,024 four times that): the masked runs solved 512 on 3
        # of 3 seeds at 88,004-110,004, and the S5 model-free agent's published 0.5 at 1,024 is the next published
        # point. Same CSV as at 512. Seed 2 keeps every round's agent (run.snapshot_every=2000, from 2026-12-06, sixth
        # session; ≈ 5.6 MB each): before seed 1's solve its rounds swung between 0.08 and 0.82 within tens of
        # updates, and only its two newest checkpoints were left to probe (docs/notes.md, "Seed 1 solved 1,024 too").
        cut1024s3m) echo "--suite memory_len --settings 1024 --models s3m --seeds 0,1,2 --root $B/runs/cut_1024_tr128 \
--carry $B/carry/cut_1024_tr128 --csv $B/results/memory_len_cut_tr128.csv $HIDDEN model.latent_input=probs \
model.mask_cut_episodes=true run.train_ratio=128 run.steps=419600 run.snapshot_every=2000" ;;
        # cut1024s3m's runs trained on to twice the sweep's budget, 840,000 env steps (26,250 updates). The scripted
        # test (docs/notes.md, "The memory steps' action noise slows the world model at 1,024") learned the cue at
        # 1,024 in 3,000-4,000 updates, 1.5-2x 512's 1,750-2,000; the RL runs that solved 512 at these settings took
        # 2.5-3.6x the scripted test's updates (4,988-6,363), so 1,024 would take ~7,500-14,400, and the sweep's budget
        # (~400 episodes at every length, 32 updates an episode here) gave seed 0 12,600. Same root (the runs train on
        # from their checkpoints), its own CSV and carry, so that the rows at the sweep's budget stay as they are.
        # Seeds 0 and 1 solved at 502,004 and 586,004 (15,175 and 17,800 updates); seed 2 solved inside the sweep's
        # budget, at 404,004, so its row here is the same as there (3 of 3; 2026-12-06). Seed 2 is its own job
        # (cut1024s3mx2s2; same root, CSV and carry) in lane 4 right after its run at the sweep's budget: a run
        # directory in use by another lane is locked, and the sweep stops its job at such a run.
        cut1024s3mx2|cut1024s3mx2s2) seeds=0,1; [ "$1" = cut1024s3mx2s2 ] && seeds=2
            echo "--suite memory_len --settings 1024 --models s3m --seeds $seeds --root $B/runs/cut_1024_tr128 \
--carry $B/carry/cut_1024_tr128_x2 --csv $B/results/memory_len_cut_tr128_x2.csv $HIDDEN model.latent_input=probs \
model.mask_cut_episodes=true run.train_ratio=128 run.steps=840000 run.snapshot_every=2000" ;;
        # The GRU at masked S3M's 1,024 settings and budget (ratio 128, cut episodes masked, 840,000 env steps; seeds
        # 0-2; rows beside S3M's in the x2 CSV): the fair pair of the 3 of 3 at 1,024. The GRU stalled at ratio 128 at
        # 200 unmasked (0 of 2; docs/notes.md "The GRU at ratio 128 stalls"), so its ratio-512 runs (probs1024gru) stay
        # too. No snapshots: the GRU's runs so far give no greedy/sampled gap to probe (docs/results.md).
        cut1024gru) echo "--suite memory_len --settings 1024 --models gru --seeds 0,1,2 --root $B/runs/cut_1024_tr128 \
--carry $B/carry/cut_1024_tr128_x2 --csv $B/results/memory_len_cut_tr128_x2.csv $HIDDEN model.latent_input=probs \
model.mask_cut_episodes=true run.train_ratio=128 run.steps=840000" ;;
        # The issue's slow start (S3M solving a length between 50 and 100 in twice the GRU's env steps) is still there
        # at 75 reading samples (S3M 28,004 / 24,004, the GRU 10,004 / 18,004), while at 200 reading probabilities S3M
        # solved first. Does the sampling noise summed over the memory steps make the lag? (Yes: both models solved in
        # 10,004-12,004 reading probabilities, docs/notes.md "The slow start at 75".) Both models reading probabilities
        # at 75, seeds 0-2, at the preset's budget as the 75 rows were run; their own CSV, so that the frontier figure
        # keeps one setting per length.
        # probs75gru01 and probs75gru2 split the GRU's seeds so that two lanes run them side by side.
        probs75s3m|probs75gru|probs75gru01|probs75gru2) model=${1#probs75}; seeds=0,1,2
            case $1 in probs75gru01) model=gru; seeds=0,1 ;; probs75gru2) model=gru; seeds=2 ;; esac
            echo "--suite memory_len --settings 75 --models $model --seeds $seeds \
--root $B/runs/probs_75 --carry $B/carry/probs_75 --csv $B/results/memory_len_probs75.csv $HIDDEN \
model.latent_input=probs" ;;
        # S3M reading samples at 200: seed 0 was at chance through 103,004 env steps when it was paused for the lead.
        s3m200) echo "--suite memory_len --settings 200 --models s3m --seeds 0 --root $B/runs/hidden_200 \
--carry $B/carry/hidden_200 --csv $B/results/memory_len_hidden.csv $HIDDEN run.steps=150000" ;;
        # The GRU's second seed at 75 (the issue: two seeds per point; seed 0 solved at 10,004), at the preset's budget
        # as the 75-150 rows were run.
        # s3m75s2, gru75s2: each model's third seed there, on today's code, as the control of probs75* (the 75 rows
        # reading samples ran at commits of 2026-12-03 and -04).
        gru75|s3m75s2|gru75s2) model=gru; seeds=0,1
            case $1 in *s2) model=${1%75s2}; seeds=2 ;; esac
            echo "--suite memory_len --settings 75 --models $model --seeds $seeds --root $B/runs/hidden_75 \
--carry $B/carry/hidden_75 --csv $B/results/memory_len_hidden.csv $HIDDEN" ;;
        gru200) echo "--suite memory_len --settings 200 --models gru --seeds 0,1 --root $B/runs/hidden_200 \
--carry $B/carry/hidden_200 --csv $B/results/memory_len_hidden.csv $HIDDEN run.steps=150000" ;;
        # The preset's entropy 3e-4 (rows for delays 1, 3 and S3M at 10; in no lane since delay 10 failed both models,
        # see dce below).
        dc0|dc1) echo "--suite discounting_chain --settings 1,3,10,30,100 --models s3m,gru --seeds ${1#dc} \
--root $B/runs/dc --carry $B/carry/dc --csv $B/results/discounting_chain.csv $DC" ;;
        # Entropy 1e-2 (the memory_len runs' value) instead of the preset's 3e-4: at 3e-4 both models' first action
        # settled on a chain without the bonus (S3M delay 3, the GRU delay 1) within ≈ 40 episodes and hardly ever
        # tried the delay-10 chain again (docs/notes.md, "The discounting chain at delay 10"). Delay 10 on three seeds
        # first (the lead), then delays 1-30 on two seeds, delay 100 on two (dce100, in lane 3, so that the GRU at 512
        # starts sooner in lane 1); one root and CSV.
        dce10|dce|dce100) case $1 in dce10) runs="--settings 10 --seeds 0,1,2" ;; dce) runs="--settings 1,3,10,30 \
--seeds 0,1" ;; *) runs="--settings 100 --seeds 0,1" ;; esac
            echo "--suite discounting_chain $runs --models s3m,gru --root $B/runs/dc_e1e-2 --carry $B/carry/dc_e1e-2 \
--csv $B/results/discounting_chain_e1e-2.csv $DC behavior.entropy=1e-2" ;;
        # γ = 1 − 1/2000: the bonus at delay 100 is worth 1.1·γ¹⁰⁰ = 1.05 > 1 (at 1 − 1/333 it is worth 0.81 < 1).
        dch) echo "--suite discounting_chain --settings 100 --models s3m,gru --seeds 0,1 --root $B/runs/dc_h2000 \
--carry $B/carry/dc_h2000 --csv $B/results/discounting_chain_h2000.csv $DC behavior.discount=0.9995 \
behavior.entropy=1e-2" ;;
        # Stops at the issue's goal, 0.95 normalised return (POPGym has no success; stop_metric reads the return).
        popgym) echo "--suite popgym --settings RepeatPreviousEasy --models s3m,gru --seeds 0 --preset popgym_cpu \
--root $B/runs/popgym --carry $B/carry/popgym --csv $B/results/popgym_repeat_previous.csv run.eval_episodes=100 \
run.eval_every=5000 run.stop_at_success=0.95 run.stop_metric=eval/return run.steps=100000" ;;
        # The same, evaluated on the posterior's mode (run.eval_mode=deterministic, as the `default` preset does): the
        # greedy job's S3M run at 40,736 env steps returned 0.82 greedily and 0.985 deterministically over 100
        # episodes each (docs/notes.md, "POPGym: the sampled latent costs the greedy policy"). pgdet<model><seeds>, e.g.
        # pgdets3m0: one root and CSV, so that each model's first seed comes before the others' further seeds.
        pgdet*) echo "--suite popgym --settings RepeatPreviousEasy --models ${1:5:3} --seeds ${1:8} \
--preset popgym_cpu --root $B/runs/popgym_det --carry $B/carry/popgym_det \
--csv $B/results/popgym_repeat_previous_det.csv run.eval_mode=deterministic run.eval_episodes=100 \
run.eval_every=5000 run.stop_at_success=0.95 run.stop_metric=eval/return run.steps=100000" ;;
        *) echo "frontier.sh: no job $1" >&2; exit 2 ;;
    esac
}
# The sweep runs a job's runs in its plan's order (settings, models, seeds). Finished jobs stay in their lanes, for
# `status` and `pack` (a job whose runs all have rows passes in seconds). What each lane has left, in order:
# * lane 1: the GRU at 512 at ratio 512, seed 0 (probs512gru: the frontier's missing side, the fair pair of S3M's
#   ratio-512 seeds), S3M at 200 with the heads reading (h, z) (lever200hout), S3M reading samples at 200 (s3m200).
# * lane 2: both models at 75 reading probabilities and their third seeds reading samples (probs75s3m, probs75gru,
#   s3m75s2, gru75s2: all solved), the GRU's seed 1 at 512 (probs512gru1: solved at 36,004), masked S3M at 1,024 trained
#   on to twice the sweep's budget (cut1024s3mx2, seeds 0, 1: solved at 502,004 and 586,004), the GRU at 1,024 at the
#   settings where it solved 512 (probs1024gru, seeds 0, 1; seed 0 paused at 191,004), then the GRU reading samples at
#   200 (gru200).
# * lane 3: the GRU's seed 2 at 512 (probs512gru2), the GRU at masked S3M's 1,024 settings (cut1024gru; seed 0 paused at
#   139,868), then both models reading the latents' mode at 200 (mode200s3m, mode200gru: an alternative to `probs`, not
#   the issue's).
# * lane 4: S3M masked at ratio 128 at 1,024 (cut1024s3m, cut1024s3mx2s2: 3 of 3 solved), then S3M at 1,024 at the
#   GRU's settings (probs1024s3m; running since 2026-12-06, sixth session).
# The GRU's three seeds at 512 run side by side: ≈ 6 env steps/s each beside three other trainings, ≈ 16 h a seed.
# From 2026-12-06 (seventh session) two lanes run at a time, so that each run goes twice as fast (four lanes do
# 0.88-0.96 of two lanes' work, benchmarks/README.md): `only lane1 probs512gru starts512 probs1024gru` (the GRU at
# 512, seed 0, the imagination-starts A/B at 512, then the GRU at 1,024 from lane 2) and lane 3 (the GRU at 512,
# seed 2, then cut1024gru); lane 4 waits. From 2026-12-06 (eighth session) `only lane2 probs75s3m probs75gru` beside
# them: both models reading probabilities at 75 (the slow start; then lane 1 runs probs75gru2, lane 2 probs75gru01), then
# s3m75s2 and gru75s2 in lanes 1 and 2: the third seed reading samples at 75, on the same code.
# In no lane: the GRU at 512 at ratio 128 (lever512tr128gru0 at 133,900 env steps, lever512tr128gru1 at 14,044; packed):
# at 200 that ratio left the GRU unsolved on both seeds (docs/notes.md "The GRU at ratio 128 stalls"), so its lane
# time went to the GRU's seeds at ratio 512 (2026-12-06). Also in no lane: the greedily evaluated POPGym job (`popgym`,
# its S3M run packed at 40,736) and the discounting chain at the preset's entropy 3e-4 (dc0, dc1).
LANE1="probs200s3m probs200gru gru75 dce cut200s3m cut200s3m34 probs512gru starts512 lever200hout s3m200"
LANE2="probs75s3m probs75gru s3m75s2 gru75s2 probs512s3m probs512s3m2 probs512gru1 cut1024s3mx2 probs1024gru gru200"
LANE3="dce10 pgdets3m0 pgdetgru0 pgdets3m1,2 pgdetgru1,2 dch cut200s3m1 probs200s3m34 lever200tr128 dce100 lever200tr128gru probs512gru2 cut1024gru mode200s3m mode200gru"
LANE4="lever512tr128 cut512s3m cut1024s3m cut1024s3mx2s2 probs1024s3m"
PARKED="lever512tr128gru0 lever512tr128gru1 popgym"  # in no lane (above); `status` and `pack` still cover them
ALL="$LANE1 $LANE2 $LANE3 $LANE4 $PARKED"  # what `jobs`, `status` and `pack` go through

lane() {  # run jobs in order; a SIGTERM stops the running sweep (its trainings checkpoint) and the lane
    echo $$ > "$B/runs/$1.pid"
    shift
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
    for name in "$@"; do
        # shellcheck disable=SC2046  # job arguments are split on purpose
        $R2I sweep $(job "$name") run.cpu_threads=1 &
        child=$!
        wait "$child"
        rc=$?
        [ "$rc" -ge 128 ] && exit "$rc"  # stopped by a signal: the lane stops with it
        [ "$rc" -ne 0 ] && echo "frontier.sh: job $name failed (exit $rc); going on with the next" >&2
    done
}

case ${1:-} in  # read-only queries first, before anything is written under $B/runs
    jobs) echo $ALL; exit 0 ;;
    args) job "${2:?usage: frontier.sh args JOB}"; exit ;;
esac
mkdir -p "$B/runs"
case ${1:-} in
    lane1) lane lane1 $LANE1 ;;
    lane2) lane lane2 $LANE2 ;;
    lane3) lane lane3 $LANE3 ;;
    lane4) lane lane4 $LANE4 ;;
    only) [[ ${2:-} =~ ^lane[1-4]$ && -n ${3:-} ]] || { echo "usage: frontier.sh only laneN JOB..." >&2; exit 2; }
        lane "${@:2}" ;;
    status) for name in $ALL; do echo "== $name"; $R2I sweep $(job "$name") --status; done ;;
    stop) for f in "$B"/runs/lane*.pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; rm -f "$f"; done ;;
    pack) for name in $ALL; do $R2I sweep $(job "$name") --pack; done ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
