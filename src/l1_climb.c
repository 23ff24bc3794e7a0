/*
 * l1_climb.c -- the window-sizing hill climber of L1's W-TinyLFU (see l1_climb.h for the
 * experiments and their decisions).
 *
 * The noise that a gain must beat is the moving mean square of the null deviations: what the
 * gain's formula gives between experiments, when every shard runs the held window --
 *
 *   pairs:      d(t) - d(t-1), d = x[a] - x[b], pooled over all pairs
 *   one shard:  x(t-1) - (x(t-2) + x(t)) / 2
 *
 * -- so a workload whose hit ratio swings between periods (a real trace swings by tens of
 * points) needs a larger gain than a steady one, and noise alone is not read as a gain. A
 * change of the mean level beyond TC__CLIMB_SHIFT times its usual changes is no noise but a new
 * workload: it restarts the exploration and is left out of the null deviations.
 */
#include <math.h>
#include <string.h>

#include "l1_climb.h"

static uint32_t gap(uint32_t a, uint32_t b) { return a > b ? a - b : b - a; }

static void plan_held(const tc__climb *c, tc__climb_plan *plan) {
    plan->base = plan->trial = c->window;
    plan->trial_mask = 0;
}

static unsigned npairs(const tc__climb *c) { return c->subsets == 1 ? 1 : c->subsets / 2; }

/* The mask of the experiment's first (second = 0) or second (second = 1) subsets. */
static unsigned trial_mask(const tc__climb *c, int second) {
    if (c->subsets == 1) return second ? 0 : 1;
    unsigned m = 0;
    for (unsigned k = 0; k < c->scope; k++) m |= 1u << (2 * ((c->pair + k) % npairs(c)) + (unsigned)second);
    return m;
}

/* The experiment's statistic for a period: the mean over its pairs of the first subset's minus
 * the second's (pairs), or the statistic (one shard). */
static double trial_stat(const tc__climb *c, const double *x) {
    if (c->subsets == 1) return x[0];
    double d = 0;
    for (unsigned k = 0; k < c->scope; k++) {
        unsigned p = (c->pair + k) % npairs(c);
        d += x[2 * p] - x[2 * p + 1];
    }
    return d / c->scope;
}

/* The sampling variance of trial_stat() for a period whose subsets' statistics have sampling
 * variances v[]. */
static double trial_var(const tc__climb *c, const double *v) {
    if (c->subsets == 1) return v[0];
    double s = 0;
    for (unsigned k = 0; k < c->scope; k++) {
        unsigned p = (c->pair + k) % npairs(c);
        s += v[2 * p] + v[2 * p + 1];
    }
    return s / ((double)c->scope * c->scope);
}

/* w moved by d in direction dir, within 0 .. TC__CLIMB_MAX. */
static uint32_t moved(uint32_t w, int dir, uint32_t d) {
    if (dir > 0) return TC__CLIMB_MAX > w && TC__CLIMB_MAX - w > d ? w + d : TC__CLIMB_MAX;
    return w > d ? w - d : 0;
}

void tc__climb_init(tc__climb *c, uint32_t start, uint32_t delta_min, unsigned subsets, tc__climb_plan *plan) {
    memset(c, 0, sizeof *c);
    c->window = start > TC__CLIMB_MAX ? TC__CLIMB_MAX : start;
    c->home = c->window;
    c->delta_min = delta_min < 1 ? 1 : delta_min > TC__CLIMB_DELTA_MAX ? TC__CLIMB_DELTA_MAX : delta_min;
    c->delta = TC__CLIMB_DELTA0 < c->delta_min ? c->delta_min : TC__CLIMB_DELTA0;
    c->delta0 = c->delta;
    c->dir = 1;
    c->subsets = subsets < 2 ? 1 : subsets > TC__CLIMB_SUBSETS ? TC__CLIMB_SUBSETS : subsets & ~1u;
    c->wait = c->spacing = TC__CLIMB_WAIT_MIN;
    c->scope = 1;
    plan_held(c, plan);
}

/* Adds the deviation s to the moving mean square *ms of n deviations so far (the last 16 or so
 * weigh most). */
static void mean_square_add(double *ms, unsigned *n, double s) {
    *ms = *n == 0 ? s * s : *ms + (s * s - *ms) / 16;
    (*n)++;
}

static void noise_add(tc__climb *c, double s) { mean_square_add(&c->noise, &c->nnoise, s); }

/* Tracks the mean statistic of normal periods. A change far beyond its usual changes means the
 * workload changed character: what the experiments learned no longer holds, so they start over
 * (first move size, soon, and first back to the starting window). */
static void level_sample(tc__climb *c, const double *x) {
    double m = 0;
    for (unsigned k = 0; k < c->subsets; k++) m += x[k];
    m /= c->subsets;
    if (c->nlevel > 0) {
        double s = m - c->level;
        if (c->nlevel > TC__CLIMB_NOISE_MIN + 1 && s * s > TC__CLIMB_SHIFT * TC__CLIMB_SHIFT * c->level_noise) {
            c->delta = c->delta < c->delta0 ? c->delta0 : c->delta;
            /* the best window of the old workload says little about the new one: the first
             * experiment tries the window the climber started from (the one that suits most
             * workloads) in one move (or a move of delta past it, when delta is the longer), so a
             * large window left by a recency-heavy workload is not walked back step by step
             * through trials that a loop may not reward */
            if (gap(c->window, c->home) >= c->delta_min) {
                c->dir = c->window > c->home ? -1 : 1;
                if (gap(c->window, c->home) > c->delta) c->delta = gap(c->window, c->home);
            }
            c->spacing = TC__CLIMB_WAIT_MIN;
            if (c->wait > TC__CLIMB_WAIT_MIN) c->wait = TC__CLIMB_WAIT_MIN;
            c->refused = 0;
            c->nhist = 0; /* a change is no noise: the null deviations start again after it */
            /* it counts in the level's own changes, at most TC__CLIMB_SHIFT of them: a workload
             * whose level jumps often (bursts) soon stops restarting the experiments */
            s = s > 0 ? TC__CLIMB_SHIFT * sqrt(c->level_noise) : -TC__CLIMB_SHIFT * sqrt(c->level_noise);
        }
        mean_square_add(&c->level_noise, &c->nlevel, s);
    } else {
        c->nlevel = 1;
    }
    c->level = m;
}

/* Takes the statistics x of a period in which every shard ran the held window. */
static void null_sample(tc__climb *c, const double *x, const double *var) {
    level_sample(c, x);
    if (c->nhist > 0) c->nnull++;
    if (c->subsets == 1) {
        if (c->nhist >= 2) noise_add(c, c->hist[0] - (c->hist[1] + x[0]) / 2);
        c->hist[1] = c->hist[0];
        c->hist[0] = x[0];
        c->hist_var = var[0];
        if (c->nhist < 2) c->nhist++;
        return;
    }
    for (unsigned p = 0; p < c->subsets / 2; p++) {
        double d = x[2 * p] - x[2 * p + 1];
        if (c->nhist >= 1) noise_add(c, d - c->pairs[p]);
        c->pairs[p] = d;
    }
    c->nhist = 1;
}

/* The experiment ended with gain (floor: its sampling variance): adopt the move, try it again
 * (a pooled gain that may be real but is not yet above the noise: the same move at once, on
 * twice the pairs while there are more, pooled with what was tried, up to TC__CLIMB_EVIDENCE
 * times the pairs), or refuse it, and space the next experiment. Returns 1 when the move was
 * adopted, 2 when it is to be tried again. */
static int decide(tc__climb *c, double gain, double floor) {
    /* a widened trial is judged on all the pairs tried for this move: the mean gain of the
     * earlier runs and this one, weighed by their pairs (a second look alone would double the
     * chances of reading noise as a gain) */
    unsigned pairs = c->subsets == 1 ? 1 : c->scope + c->tried;
    gain = (gain * (pairs - c->tried) + c->tried_gain) / pairs;
    floor = (floor * (pairs - c->tried) * (pairs - c->tried) + c->tried_floor) / ((double)pairs * pairs);
    double noise = c->noise / pairs;
    if (noise < floor) noise = floor; /* never below what sampling alone explains */
    if (gain > TC__CLIMB_Z * sqrt(noise)) {
        c->tried = 0;
        c->tried_gain = c->tried_floor = 0;
        c->window = c->trial;
        c->delta = c->delta > TC__CLIMB_DELTA_MAX / 3 * 2 ? TC__CLIMB_DELTA_MAX : c->delta + c->delta / 2;
        c->refused = 0;
        c->wait = c->spacing = TC__CLIMB_WAIT_MIN;
        return 1;
    }
    /* once both directions have been refused (delta halved: the window is near its best), a
     * move is widened only on a gain of TC__CLIMB_WIDEN deviations: a widened trial runs on
     * more shards, and on a workload whose best window is where it is held, the trials are what
     * costs hits */
    double widen = c->delta < c->delta0 ? TC__CLIMB_WIDEN * sqrt(noise) : 0;
    if (gain > widen && c->subsets > 1 && pairs < TC__CLIMB_EVIDENCE * npairs(c)) {
        c->tried_gain = gain * pairs;
        c->tried_floor = floor * (double)pairs * pairs;
        c->tried = pairs;
        if (c->scope < npairs(c)) c->scope *= 2;
        return 2;
    }
    c->scope = 1;
    c->tried = 0;
    c->tried_gain = c->tried_floor = 0;
    if (!c->refused) { /* the other way, soon */
        c->refused = 1;
        c->dir = -c->dir;
        c->wait = TC__CLIMB_WAIT_MIN;
        return 0;
    }
    /* both ways refused: near the best window at this resolution */
    c->refused = 0;
    c->dir = -c->dir;
    c->delta = c->delta / 2 < c->delta_min ? c->delta_min : c->delta / 2;
    c->spacing = c->spacing * TC__CLIMB_BACKOFF > TC__CLIMB_WAIT_MAX ? TC__CLIMB_WAIT_MAX : c->spacing * TC__CLIMB_BACKOFF;
    c->wait = c->spacing;
    return 0;
}

/* Plans the first period of an experiment on c->trial. */
static void plan_trial(tc__climb *c, tc__climb_plan *plan) {
    c->stage = 1;
    plan->base = c->window;
    plan->trial = c->trial;
    plan->trial_mask = trial_mask(c, 0);
}

/* Plans the first period of an experiment in the current direction; 0 when that direction is
 * closed (against a bound, a move too small to see): it is refused without a trial. */
static int start_trial(tc__climb *c, tc__climb_plan *plan) {
    c->trial = moved(c->window, c->dir, c->delta);
    if (gap(c->trial, c->window) < c->delta_min) {
        decide(c, -HUGE_VAL, 0);
        return 0;
    }
    c->pair = (c->pair + c->scope) % npairs(c); /* pairs take turns */
    plan_trial(c, plan);
    return 1;
}

void tc__climb_period(tc__climb *c, const double *x, const double *var, tc__climb_plan *plan) {
    switch (c->stage) {
    case 0:
        null_sample(c, x, var);
        if (c->wait > 0) c->wait--;
        if (c->wait == 0 && c->nnull >= TC__CLIMB_NOISE_MIN && start_trial(c, plan)) return;
        break;
    case 1: /* the trial ran on the first subsets (or the one shard): next, every shard runs held */
        c->first = trial_stat(c, x);
        c->first_var = trial_var(c, var);
        c->stage = 2;
        break;
    case 2: /* the washout: the trial's after-effect fades; next, the second subsets' trial (pairs)
             * or the held window measured after it (one shard) */
        c->stage = 3;
        if (c->subsets > 1) {
            plan->base = c->window;
            plan->trial = c->trial;
            plan->trial_mask = trial_mask(c, 1);
            return;
        }
        break;
    default:
        c->stage = 0;
        if (c->subsets == 1) {
            decide(c, c->first - (c->hist[0] + x[0]) / 2, c->first_var + (c->hist_var + var[0]) / 4);
            c->hist[1] = c->hist[0]; /* this period ran the held window: it counts as one */
            c->hist[0] = x[0];
            c->hist_var = var[0];
            break;
        }
        c->nhist = 0; /* the pairs' differences are measured afresh after an experiment */
        int r = decide(c, c->first - trial_stat(c, x), c->first_var + trial_var(c, var));
        if (r == 2) {
            plan_trial(c, plan); /* the same move again, on more pairs, at once */
            return;
        }
        /* adopted: the next, longer move in the same direction, at once */
        if (r == 1 && start_trial(c, plan)) return;
        break;
    }
    plan_held(c, plan);
}
