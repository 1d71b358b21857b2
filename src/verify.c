/*
 * verify.c - scans for dump, the offline checker, and index rebuilds.
 *
 * mqlog_verify walks every byte of every segment with full validation and
 * checks the derived index against what it finds; it changes nothing.
 * mqlog_recover rebuilds the derived index of each partition from its
 * segments, then verifies, so that damage it cannot repair (inside sealed
 * segments) is reported rather than hidden.
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* ======================================================================== */
/* Scanning files and partitions                                            */
/* ======================================================================== */

static bool all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Scan the bytes [0, limit) of a mapped segment, calling @ops.  Returns 0,
 * the callback's non-zero value, or MQLOG_ECORRUPT with a message.
 * *end gets the offset after the last valid batch.
 */
static int scan_mapped(const char *path, const uint8_t *map, uint64_t limit,
		       bool have_base, uint64_t base, bool zero_tail_ok,
		       const mqlog_scan_ops *ops, void *arg, uint64_t *end)
{
	mqlog_batch_info bi;
	struct batch_hdr h;
	struct batch_iter it;
	mqlog_record rec;
	const char *why;
	uint64_t pos = 0, expect = base;
	int rc;

	memset(&bi, 0, sizeof bi);
	bi.file = path;
	while (pos < limit) {
		rc = batch_check_header(map + pos, (size_t)(limit - pos), &h,
					&why);
		if (rc && zero_tail_ok && all_zero(map + pos, limit - pos))
			break;
		if (!rc && have_base && h.base_offset != expect) {
			rc = MQLOG_ECORRUPT;
			why = "base offset does not continue the log";
		}
		if (!rc)
			rc = batch_check_body(map + pos, &h, &why);
		if (rc) {
			*end = expect;
			return mq_err(MQLOG_ECORRUPT,
				      "%s: batch at byte %llu: %s", path,
				      (unsigned long long)pos, why);
		}
		if (!have_base) {
			have_base = true;
			expect = h.base_offset;
		}
		bi.position = pos;
		bi.length = h.length;
		bi.base_offset = h.base_offset;
		bi.record_count = h.record_count;
		bi.first_timestamp = h.first_timestamp;
		bi.max_timestamp = h.max_timestamp;
		bi.flags = h.flags;
		bi.producer_id = h.producer_id;
		bi.base_sequence = h.base_sequence;
		bi.header_checksum = h.header_checksum;
		bi.body_checksum = h.body_checksum;
		if (ops && ops->on_batch) {
			rc = ops->on_batch(arg, &bi);
			if (rc)
				return rc;
		}
		batch_iter_init(&it, map + pos, &h);
		memset(&rec, 0, sizeof rec);
		while ((rc = batch_iter_next(&it, &rec, &why)) == 1) {
			if (ops && ops->on_record) {
				int r = ops->on_record(arg, &bi, &rec);
				if (r)
					return r;
			}
		}
		if (rc < 0) {
			*end = expect;
			return mq_err(MQLOG_ECORRUPT,
				      "%s: batch at byte %llu: %s", path,
				      (unsigned long long)pos, why);
		}
		expect += h.record_count;
		pos += h.length;
	}
	*end = expect;
	return 0;
}

int mqlog_scan_file(const char *path, const mqlog_scan_ops *ops, void *arg)
{
	struct segmap m;
	const char *slash;
	uint64_t base = 0, end;
	bool have_base;
	int rc;

	if (!path)
		return mq_err(MQLOG_EINVAL, "scan: path is NULL");
	slash = strrchr(path, '/');
	have_base = segment_parse_name(slash ? slash + 1 : path, &base);
	rc = segmap_open(&m, path, 0);
	if (rc)
		return rc;
	rc = scan_mapped(path, m.base, m.file_size, have_base, base, true, ops,
			 arg, &end);
	segmap_close(&m);
	return rc;
}

/* Calls @fn for each segment of @p with the byte limit to read. */
typedef int (*seg_fn)(void *arg, const char *path, uint64_t base,
		      const uint8_t *map, uint64_t limit, bool active);

static int foreach_segment(struct partition *p, seg_fn fn, void *arg)
{
	struct pview v;
	uint64_t *bases = NULL;
	size_t n = 0;
	char path[MQ_PATH_MAX];
	int rc;

	state_read_view(p->st, &v);
	rc = segment_list(p->dir, &bases, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		struct segmap m;
		uint64_t limit;
		bool active = bases[i] == v.seg_base;
		if (bases[i] > v.seg_base)
			break; /* not published yet */
		partition_seg_path(p, bases[i], path);
		rc = segmap_open(&m, path, 0);
		if (rc)
			break;
		limit = active ? v.seg_end_pos : m.file_size;
		if (limit > m.file_size)
			limit = m.file_size;
		rc = fn(arg, path, bases[i], m.base, limit, active);
		segmap_close(&m);
	}
	free(bases);
	return rc;
}

struct scan_part_ctx {
	const mqlog_scan_ops *ops; /* user callbacks */
	void *arg;		   /* their argument */
	uint32_t partition;	   /* for records */
};

static int scan_part_record(void *arg, const mqlog_batch_info *b,
			    const mqlog_record *rec)
{
	struct scan_part_ctx *c = arg;
	mqlog_record r = *rec;

	r.partition = c->partition;
	return c->ops->on_record ? c->ops->on_record(c->arg, b, &r) : 0;
}

static int scan_part_batch(void *arg, const mqlog_batch_info *b)
{
	struct scan_part_ctx *c = arg;
	return c->ops->on_batch ? c->ops->on_batch(c->arg, b) : 0;
}

static int scan_part_seg(void *arg, const char *path, uint64_t base,
			 const uint8_t *map, uint64_t limit, bool active)
{
	struct scan_part_ctx *c = arg;
	mqlog_scan_ops ops = { scan_part_batch, scan_part_record };
	uint64_t end;

	MQ_UNUSED(active);
	return scan_mapped(path, map, limit, true, base, false,
			   c->ops ? &ops : NULL, c, &end);
}

int mqlog_scan_partition(mqlog_topic *t, uint32_t partition,
			 const mqlog_scan_ops *ops, void *arg)
{
	struct scan_part_ctx c = { ops, arg, partition };
	struct partition *p;
	int rc;

	if (!t)
		return mq_err(MQLOG_EINVAL, "scan: topic is NULL");
	rc = topic_partition(t, partition, &p);
	if (rc)
		return rc;
	return foreach_segment(p, scan_part_seg, &c);
}

/* ======================================================================== */
/* Verify                                                                   */
/* ======================================================================== */

struct vctx {
	mqlog_problem_fn problem; /* report callback */
	void *arg;		  /* its argument */
	mqlog_verify_stats *st;	  /* running totals */
	const char *topic;	  /* current topic */
	uint32_t partition;	  /* current partition */
	bool have_prev;		  /* a segment was seen before */
	uint64_t prev_end;	  /* offset after the previous segment */
	struct index_entry *oe;	  /* the partition's offset index */
	size_t noe, ioe;	  /* count, next to match */
	struct time_entry *te;	  /* the partition's time index */
	size_t nte, ite;	  /* count, next to match */
	int64_t running;	  /* max timestamp before the current batch */
	uint64_t seg;		  /* current segment base */
	const char *path;	  /* current segment path */
};

static void report(struct vctx *c, const char *file, uint64_t pos,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(struct vctx *c, const char *file, uint64_t pos,
		   const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	c->st->problems++;
	if (c->problem)
		c->problem(c->arg, c->topic, c->partition, file, pos, what);
}

static int collect_oe(void *arg, const struct index_entry *e)
{
	struct vctx *c = arg;
	if (c->noe % 1024 == 0) {
		void *n = realloc(c->oe, (c->noe + 1024) * sizeof *c->oe);
		if (!n)
			return MQLOG_ENOMEM;
		c->oe = n;
	}
	c->oe[c->noe++] = *e;
	return 0;
}

static int collect_te(void *arg, const struct time_entry *e)
{
	struct vctx *c = arg;
	if (c->nte % 1024 == 0) {
		void *n = realloc(c->te, (c->nte + 1024) * sizeof *c->te);
		if (!n)
			return MQLOG_ENOMEM;
		c->te = n;
	}
	c->te[c->nte++] = *e;
	return 0;
}

/* Match index entries against one valid batch. */
static void match_batch(struct vctx *c, uint64_t pos, const struct batch_hdr *h)
{
	while (c->ioe < c->noe && c->oe[c->ioe].offset < h->base_offset) {
		const struct index_entry *e = &c->oe[c->ioe++];
		report(c, c->path, e->pos,
		       "offset index entry %llu (segment %llu, byte %llu) "
		       "points at no batch",
		       (unsigned long long)e->offset,
		       (unsigned long long)e->seg_base,
		       (unsigned long long)e->pos);
	}
	if (c->ioe < c->noe && c->oe[c->ioe].offset == h->base_offset) {
		const struct index_entry *e = &c->oe[c->ioe++];
		c->st->index_entries++;
		if (e->seg_base != c->seg || e->pos != pos)
			report(c, c->path, pos,
			       "offset index entry %llu says segment %llu byte "
			       "%llu, log has it at segment %llu byte %llu",
			       (unsigned long long)e->offset,
			       (unsigned long long)e->seg_base,
			       (unsigned long long)e->pos,
			       (unsigned long long)c->seg,
			       (unsigned long long)pos);
	}
	while (c->ite < c->nte && c->te[c->ite].offset < h->base_offset) {
		const struct time_entry *e = &c->te[c->ite++];
		report(c, c->path, e->pos,
		       "time index entry (%lld, %llu) points at no batch",
		       (long long)e->ts, (unsigned long long)e->offset);
	}
	if (c->ite < c->nte && c->te[c->ite].offset == h->base_offset) {
		const struct time_entry *e = &c->te[c->ite++];
		c->st->index_entries++;
		if (e->seg_base != c->seg || e->pos != pos)
			report(c, c->path, pos,
			       "time index entry for offset %llu has the wrong "
			       "position",
			       (unsigned long long)e->offset);
		/* Lookups rely on: no record before the entry is newer. */
		if (c->running > e->ts)
			report(c, c->path, pos,
			       "time index entry for offset %llu claims max "
			       "timestamp %lld, log has %lld before it",
			       (unsigned long long)e->offset, (long long)e->ts,
			       (long long)c->running);
	}
}

static int verify_seg(void *arg, const char *path, uint64_t base,
		      const uint8_t *map, uint64_t limit, bool active)
{
	struct vctx *c = arg;
	struct batch_hdr h;
	struct batch_iter it;
	mqlog_record rec;
	const char *why;
	uint64_t pos = 0, expect = base;
	int rc;

	c->seg = base;
	c->path = path;
	c->st->segments++;
	if (c->have_prev && c->prev_end != base)
		report(c, path, 0,
		       "segment starts at offset %llu but the previous one "
		       "ends at %llu",
		       (unsigned long long)base,
		       (unsigned long long)c->prev_end);
	while (pos < limit) {
		rc = batch_check_header(map + pos, (size_t)(limit - pos), &h,
					&why);
		if (!rc && h.base_offset != expect) {
			rc = MQLOG_ECORRUPT;
			why = "base offset does not continue the log";
		}
		if (!rc)
			rc = batch_check_body(map + pos, &h, &why);
		if (!rc) {
			batch_iter_init(&it, map + pos, &h);
			while ((rc = batch_iter_next(&it, &rec, &why)) == 1)
				;
		}
		if (rc < 0) {
			report(c, path, pos, "%s%s", why,
			       active ? "" : " (sealed segment)");
			break;
		}
		match_batch(c, pos, &h);
		if (h.max_timestamp > c->running)
			c->running = h.max_timestamp;
		c->st->batches++;
		c->st->records += h.record_count;
		c->st->bytes += h.length;
		expect += h.record_count;
		pos += h.length;
	}
	c->have_prev = true;
	c->prev_end = expect;
	return 0;
}

static int verify_partition(struct mqlog_topic *t, uint32_t id, struct vctx *c)
{
	struct partition *p;
	int rc;

	rc = topic_partition(t, id, &p);
	if (rc)
		return rc;
	/* Our own buffered entries would otherwise look missing. */
	(void)partition_flush_index(p);
	c->partition = id;
	c->have_prev = false;
	c->noe = c->nte = c->ioe = c->ite = 0;
	c->running = INT64_MIN;
	rc = index_foreach_offset(t->db->ix, t->meta.id, id, collect_oe, c);
	if (!rc)
		rc = index_foreach_time(t->db->ix, t->meta.id, id, collect_te,
					c);
	if (rc)
		return rc;
	c->st->partitions++;
	rc = foreach_segment(p, verify_seg, c);
	if (rc)
		return rc;
	/* Entries past the end of the valid log. */
	for (; c->ioe < c->noe; c->ioe++)
		report(c, NULL, 0,
		       "offset index entry %llu is past the log end",
		       (unsigned long long)c->oe[c->ioe].offset);
	for (; c->ite < c->nte; c->ite++)
		report(c, NULL, 0,
		       "time index entry for offset %llu is past "
		       "the log end",
		       (unsigned long long)c->te[c->ite].offset);
	return 0;
}

int mqlog_verify(mqlog *db, const char *topic, mqlog_problem_fn problem,
		 void *arg, mqlog_verify_stats *stats)
{
	mqlog_verify_stats local;
	struct vctx c;
	char **names = NULL;
	size_t count = 0;
	int rc = 0;

	if (!db)
		return mq_err(MQLOG_EINVAL, "verify: db is NULL");
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof *stats);
	memset(&c, 0, sizeof c);
	c.problem = problem;
	c.arg = arg;
	c.st = stats;
	rc = topic_names(db, topic, &names, &count);
	if (rc)
		return rc;
	for (size_t i = 0; i < count && !rc; i++) {
		mqlog_topic *t;
		rc = mqlog_topic_open(db, names[i], &t);
		if (rc)
			break;
		c.topic = t->name;
		stats->topics++;
		for (uint32_t pi = 0; pi < t->meta.cfg.partitions && !rc; pi++)
			rc = verify_partition(t, pi, &c);
		mqlog_topic_close(t);
	}
	mqlog_list_free(names, count);
	free(c.oe);
	free(c.te);
	if (rc)
		return rc;
	if (stats->problems)
		return mq_err(MQLOG_ECORRUPT, "verify: %llu problem(s) found",
			      (unsigned long long)stats->problems);
	return 0;
}

/* ======================================================================== */
/* Recover                                                                  */
/* ======================================================================== */

int mqlog_recover(mqlog *db, const char *topic, mqlog_recover_stats *stats)
{
	mqlog_recover_stats local;
	char **names = NULL;
	size_t count = 0;
	int rc = 0;

	if (!db)
		return mq_err(MQLOG_EINVAL, "recover: db is NULL");
	if (db->rdonly)
		return mq_err(MQLOG_ERDONLY, "recover: %s opened read-only",
			      db->path);
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof *stats);
	rc = topic_names(db, topic, &names, &count);
	if (rc)
		return rc;
	for (size_t i = 0; i < count && !rc; i++) {
		mqlog_topic *t;
		rc = mqlog_topic_open(db, names[i], &t);
		if (rc)
			break;
		for (uint32_t pi = 0; pi < t->meta.cfg.partitions && !rc;
		     pi++) {
			struct partition *p;
			uint64_t entries = 0, truncated = 0;
			rc = topic_partition(t, pi, &p);
			if (!rc)
				rc = partition_rebuild_index(p, &entries,
							     &truncated);
			stats->partitions++;
			stats->index_entries += entries;
			/* Tails cut when the partition was opened count too. */
			stats->truncated_bytes += truncated;
			if (!rc) {
				stats->truncated_bytes += p->truncated_at_open;
				p->truncated_at_open = 0;
				stats->offsets_clamped += p->clamped_at_open;
				p->clamped_at_open = 0;
			}
		}
		mqlog_topic_close(t);
	}
	mqlog_list_free(names, count);
	if (rc)
		return rc;
	/* What a rebuild cannot fix (damage inside sealed segments) must
	 * still be reported. */
	return mqlog_verify(db, topic, NULL, NULL, NULL);
}
