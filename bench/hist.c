/*
 * hist.c - the log-linear histogram of hist.h: bucket values, merging and
 * quantiles.
 */
#include "hist.h"

uint64_t hist_value(unsigned i)
{
	unsigned shift, sub;

	if (i < 2 * HIST_SUB)
		return i;
	shift = (i - 2 * HIST_SUB) / HIST_SUB + 1;
	sub = (i - 2 * HIST_SUB) % HIST_SUB + HIST_SUB;
	return (((uint64_t)sub + 1) << shift) - 1;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->n += from->n;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;
	unsigned i;

	if (!h->n)
		return 0;
	if (q >= 1.0)
		return h->max;
	want = (uint64_t)(q * (double)h->n + 0.999999);
	if (want < 1)
		want = 1;
	if (want > h->n)
		want = h->n;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want) {
			uint64_t v = hist_value(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}
