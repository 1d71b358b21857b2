/*
 * hist.h - a log-linear latency histogram, HdrHistogram style.
 *
 * Values are unsigned 64-bit (the bench records nanoseconds).  Memory is
 * fixed, 30 KiB, whatever the range and however many values are recorded:
 *
 *   values 0..127      one bucket each (exact);
 *   values >= 128      with e = floor(log2 v) and shift = e - 6, the bucket
 *                      of (v >> shift), which lies in 64..127: 64 buckets
 *                      per power of two, so every value is known to within
 *                      1/64 (1.6 %).
 *
 * The exact maximum is kept beside the buckets.  A quantile is reported as
 * the highest value of its bucket, capped by that maximum, so it never
 * understates.  Not thread-safe: give each thread its own and merge.
 */
#ifndef MQLOG_BENCH_HIST_H
#define MQLOG_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB     64
#define HIST_BUCKETS (2 * HIST_SUB + 57 * HIST_SUB)

struct hist {
	uint64_t n;		       /* values recorded */
	uint64_t max;		       /* largest value, exact */
	uint64_t bucket[HIST_BUCKETS]; /* counts, indexed by hist_index() */
};

/* hist_index - the bucket of @v. */
static inline unsigned hist_index(uint64_t v)
{
	unsigned e, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	shift = e - 6;
	return 2 * HIST_SUB + (shift - 1) * HIST_SUB +
	       (unsigned)((v >> shift) - HIST_SUB);
}

/* hist_add - record @v; a few instructions, no allocation. */
static inline void hist_add(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

/* hist_add_n - record @v @count times. */
static inline void hist_add_n(struct hist *h, uint64_t v, uint64_t count)
{
	h->bucket[hist_index(v)] += count;
	h->n += count;
	if (count && v > h->max)
		h->max = v;
}

/* hist_value - the highest value that lands in bucket @i. */
uint64_t hist_value(unsigned i);

/* hist_merge - add every value of @from to @into. */
void hist_merge(struct hist *into, const struct hist *from);

/* hist_quantile - the value at quantile @q (0 < q <= 1); 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif /* MQLOG_BENCH_HIST_H */
