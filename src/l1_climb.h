/*
 * l1_climb.h -- the hill climber that sizes L1's W-TinyLFU admission window.
 *
 * The window is a fraction of the capacity, in units of 1/TC__CLIMB_ONE. L1's shards are split
 * into subsets (shard index modulo the number of subsets, at most TC__CLIMB_SUBSETS; all shards
 * see the same kind of traffic, since the key's hash picks the shard). The climber is fed one
 * statistic per subset and sampling period (L1: minus the log of the miss ratio) and answers
 * with the plan of the next period. Most periods every shard runs the window the climber
 * holds. Now and then it runs an experiment, a controlled trial of one move (the held window
 * plus or minus delta) over three periods:
 *
 *   pairs of subsets (a, b):  trial on a | washout (all held) | trial on b
 *                             gain = (x[a] - x[b]) in the first - (x[a] - x[b]) in the third
 *   one shard:                trial      | washout            | held ("after")
 *                             gain = x(trial) - (x(before) + x(after)) / 2
 *
 * In a pair the first difference is effect + bias and the third bias - effect: their difference
 * is twice the effect whatever the workload does (both subsets serve the same period) and
 * whatever tells the two subsets apart (their keys). The washout lets the trial's after-effect
 * (what its window admitted) fade before the other side is measured. With one shard, comparing
 * with the mean of the periods around the trial cancels a linear trend. A move is adopted when
 * its gain, pooled over every pair it was tried on, exceeds TC__CLIMB_Z standard deviations of
 * the noise, measured from the same statistics between experiments (and never below what
 * sampling alone explains):
 *
 *   adopted:   the window moves; the next, 1.5 times longer move in the same direction is tried
 *              at once (a workload far from its best window gets there in a few experiments)
 *   promising: a pooled gain above 0 but within the noise: the move is tried again at once, on
 *              twice as many pairs while there are more, and pooled, up to TC__CLIMB_EVIDENCE
 *              times the pairs (a small but steady gain is adopted on the sum of the evidence);
 *              once both directions have been refused, only a gain above TC__CLIMB_WIDEN
 *              deviations is promising (a wider trial costs hits where the window is right)
 *   refused:   the other direction is tried soon; when both are refused the window is near its
 *              best at this resolution: delta halves and the experiments come half as often, down
 *              to one every TC__CLIMB_WAIT_MAX periods, so a steady workload pays little for them
 *   shifted:   when the level of the statistic moves by TC__CLIMB_SHIFT of its usual changes, the
 *              workload has changed character: delta and the spacing start over, and the first
 *              experiment is a move straight back to the starting window (the held window was
 *              best for the old workload; trials of small steps back from a large window can
 *              miss the gain on a loop, which comes only a turn of the loop later)
 *
 *   fraction (0 .. TC__CLIMB_MAX): window entries = capacity * fraction / TC__CLIMB_ONE
 *
 * Pure computation on the caller's state: not thread-safe (L1 lets one thread at a time feed it)
 * and O(TC__CLIMB_SUBSETS) per period.
 */
#ifndef TC_L1_CLIMB_H
#define TC_L1_CLIMB_H

#include <stdint.h>

#define TC__CLIMB_ONE 65536u                   /* the whole capacity */
#define TC__CLIMB_START (TC__CLIMB_ONE / 100)   /* 1%: W-TinyLFU's usual window, right for skewed traffic */
#define TC__CLIMB_MAX (TC__CLIMB_ONE - TC__CLIMB_ONE / 16) /* the largest window: main keeps 1/16 */
#define TC__CLIMB_DELTA0 (TC__CLIMB_ONE / 8)    /* the first experiment's move */
#define TC__CLIMB_DELTA_MIN (TC__CLIMB_ONE / 64)
#define TC__CLIMB_DELTA_MAX (TC__CLIMB_ONE / 2)
#define TC__CLIMB_WAIT_MIN 2   /* periods between experiments: at least two, to measure the noise */
#define TC__CLIMB_WAIT_MAX 16
#define TC__CLIMB_BACKOFF 2    /* the wait grows this much when both directions are refused */
#define TC__CLIMB_NOISE_MIN 5  /* periods of null deviations measured before the first experiment */
#define TC__CLIMB_Z 1.0        /* adopt a move whose pooled gain is this many noise deviations */
#define TC__CLIMB_EVIDENCE 4   /* a move is tried on at most this many times the pairs before it is refused */
#define TC__CLIMB_WIDEN 0.5    /* once settled, widen a move's trial only on a gain this many noise deviations */
#define TC__CLIMB_SUBSETS 8    /* the most subsets of shards an experiment chooses its pair from */
#define TC__CLIMB_SHIFT 4.0    /* a change of the level by this many deviations: the workload changed */

/* What one period runs: every shard runs base, except the shards of the subsets in trial_mask
 * (bit k: subset k), which run trial. */
typedef struct tc__climb_plan {
    uint32_t base, trial;
    unsigned trial_mask;
} tc__climb_plan;

typedef struct tc__climb {
    uint32_t window;     /* the held window */
    uint32_t home;       /* the window it started from: the first move tried after a shift */
    uint32_t delta;      /* the next experiment's move */
    uint32_t delta_min, delta0; /* the smallest move, the first move */
    int dir;             /* the direction the next experiment tries: +1 larger, -1 smaller */
    int refused;         /* the other direction was refused since the last adoption */
    unsigned subsets;    /* 1 (one shard) or an even number up to TC__CLIMB_SUBSETS */
    unsigned wait;       /* normal periods before the next experiment */
    unsigned spacing;    /* the wait after both directions were refused */
    unsigned stage;      /* 0: a normal period; 1, 2, 3: the experiment's trial, washout, second side */
    unsigned pair;       /* the experiment's first pair: subsets 2 * pair and 2 * pair + 1 */
    unsigned scope;      /* pairs in the experiment (consecutive from pair, wrapping) */
    unsigned tried;      /* pairs already tried for this move (before it was widened) */
    double tried_gain, tried_floor; /* their gains' sum, and their sampling variances' sum */
    uint32_t trial;      /* the experiment's window */
    double first;        /* the statistic of the experiment's first period */
    double first_var;    /* its sampling variance */
    double hist_var;     /* one shard: the sampling variance of hist[0] */
    double hist[2];      /* one shard: the statistic of the last normal periods, newest first */
    double pairs[TC__CLIMB_SUBSETS / 2]; /* pairs: the last normal period's differences */
    unsigned nhist;      /* normal periods in hist (one shard) or pairs (0 or 1) */
    double noise;        /* mean square of the null deviations (moving average) */
    unsigned nnoise;     /* null deviations measured */
    unsigned nnull;      /* periods that gave null deviations */
    double level;        /* the mean statistic of the last normal period */
    double level_noise;  /* mean square of its changes between normal periods */
    unsigned nlevel;     /* changes measured (0: level not set) */
} tc__climb;

/* Starts a climber holding window start (0 .. TC__CLIMB_ONE), with experiments of at least
 * delta_min (a move a shard cannot see is no experiment), over subsets subsets of shards (1, or
 * even up to TC__CLIMB_SUBSETS). *plan receives the first period's plan. */
void tc__climb_init(tc__climb *c, uint32_t start, uint32_t delta_min, unsigned subsets, tc__climb_plan *plan);

/* A period ended with statistic x[k] for subset k (higher is better). *plan receives the next
 * period's. O(subsets). */
void tc__climb_period(tc__climb *c, const double *x, const double *var, tc__climb_plan *plan);

#endif /* TC_L1_CLIMB_H */
