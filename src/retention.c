/*
 * retention.c - limits on what a partition keeps: record count, bytes and
 * age; the full policy when a limit is reached; moving the log start and
 * deleting whole segments below it.
 *
 * The log start.  Records below it are never returned.  It moves by:
 *  - the count limit under DROP_OLDEST: start = end - max_messages, exactly,
 *    on every append (in shared memory; recovery recomputes the same value
 *    from the end offset, so no LMDB write per append is needed);
 *  - deleting whole segments (bytes and age limits): start = the base of the
 *    oldest remaining segment;
 *  - mqlog_partition_release(): persisted in LMDB before it returns.
 *
 * Deleting segments is crash-safe by ordering: the new start is made
 * durable in LMDB first, then the files are unlinked and the directory
 * fsynced.  A crash in between leaves files wholly below the persisted
 * start, which recovery deletes; it never leaves a hole that recovery could
 * mistake for corruption.  Unlinked files stay valid for readers that have
 * them mapped, so deletion never pulls memory from under a reader in any
 * process; such a reader gets MQLOG_ERANGE when it moves on.
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const mqlog_topic_config *rcfg(const struct partition *p)
{
	return &p->t->meta.cfg;
}

uint64_t retention_recovered_start(const struct partition *p,
				   uint64_t persisted, uint64_t first_base,
				   uint64_t end)
{
	const mqlog_topic_config *c = rcfg(p);
	uint64_t start = persisted > first_base ? persisted : first_base;

	if (c->full_policy == MQLOG_FULL_DROP_OLDEST && c->max_messages > 0 &&
	    end > (uint64_t)c->max_messages &&
	    end - (uint64_t)c->max_messages > start)
		start = end - (uint64_t)c->max_messages;
	return start > end ? end : start;
}

static uint64_t seg_size(struct partition *p, uint64_t base)
{
	char path[MQ_PATH_MAX];
	struct stat st;

	partition_seg_path(p, base, path);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int retention_delete_below(struct partition *p, uint64_t start)
{
	struct pstate *st = p->st;
	struct part_meta pm = { 0 };
	char path[MQ_PATH_MAX];
	uint64_t *del = NULL, freed = 0;
	size_t ndel = 0;
	int rc = 0;

	/* Sealed segments whose successor starts at or below the new start
	 * hold nothing readable.  The active segment is never deleted. */
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i + 1 < p->nbases; i++) {
		if (p->bases[i + 1] > start || p->bases[i] >= st->seg_base)
			break;
		ndel = i + 1;
	}
	if (ndel) {
		del = malloc(ndel * sizeof *del);
		if (del)
			memcpy(del, p->bases, ndel * sizeof *del);
	}
	pthread_mutex_unlock(&p->mu);
	if (ndel == 0)
		return 0;
	if (!del)
		return mq_err(MQLOG_ENOMEM, "%s: retention", p->dir);

	/* 1. The start is durable before any file goes. */
	(void)index_part_get(p->t->db->ix, p->t->meta.id, p->id, &pm);
	if (pm.log_start < start) {
		pm.log_start = start;
		rc = index_part_put(p->t->db->ix, p->t->meta.id, p->id, &pm);
		if (rc) {
			mq_err_wrap(rc, "%s: persist log start %llu", p->dir,
				    (unsigned long long)start);
			goto out;
		}
	}
	MQ_CRASH_POINT("retention.after_persist");
	/* 2. The files, oldest first, then the directory entry removals. */
	for (size_t i = 0; i < ndel; i++) {
		uint64_t sz = seg_size(p, del[i]);
		partition_seg_path(p, del[i], path);
		rc = io_unlink(path);
		if (rc && rc != -ENOENT) {
			mq_err(rc, "%s: delete segment", path);
			ndel = i;
			break;
		}
		rc = 0;
		freed += sz;
		MQ_CRASH_POINT("retention.after_unlink");
	}
	if (ndel) {
		int r = io_fsync_dir(p->dir);
		if (r && !rc)
			rc = mq_err(r, "%s: fsync after deleting segments",
				    p->dir);
	}
	pthread_mutex_lock(&p->mu);
	size_t keep = 0;
	for (size_t i = 0; i < p->nbases; i++) {
		bool gone = false;
		for (size_t j = 0; j < ndel; j++)
			gone |= p->bases[i] == del[j];
		if (!gone)
			p->bases[keep++] = p->bases[i];
	}
	p->nbases = keep;
	uint64_t first = p->nbases ? p->bases[0] : start;
	pthread_mutex_unlock(&p->mu);
	uint64_t tb = MQ_LOAD_RELAXED(&st->total_bytes);
	MQ_STORE_RELAXED(&st->total_bytes, tb > freed ? tb - freed : 0);
	/* Entries of deleted segments are never used again. */
	if (ndel)
		(void)index_trim(p->t->db->ix, p->t->meta.id, p->id, first);
out:
	free(del);
	return rc;
}

/* Oldest sealed segment's base and the base after it; false when none. */
static bool oldest_sealed(struct partition *p, uint64_t *base, uint64_t *next)
{
	bool ok = false;

	pthread_mutex_lock(&p->mu);
	if (p->nbases >= 2 && p->bases[0] < p->st->seg_base) {
		*base = p->bases[0];
		*next = p->bases[1];
		ok = true;
	}
	pthread_mutex_unlock(&p->mu);
	return ok;
}

/* Drop whole sealed segments until @need more bytes fit under the limit. */
static int drop_for_bytes(struct partition *p, uint64_t limit, uint64_t need)
{
	uint64_t base, next;
	int rc = 0;

	while (MQ_LOAD_RELAXED(&p->st->total_bytes) + need > limit &&
	       oldest_sealed(p, &base, &next)) {
		MQ_UNUSED(base);
		if (next > MQ_LOAD_RELAXED(&p->st->start_offset))
			partition_publish_start(p, next);
		rc = retention_delete_below(p, next);
		if (rc)
			break;
	}
	return rc;
}

int retention_admit(struct partition *p, size_t n, size_t size)
{
	const mqlog_topic_config *c = rcfg(p);
	struct pstate *st = p->st;
	uint64_t start = st->start_offset, end = st->end_offset;
	int rc;

	if (c->max_messages > 0) {
		uint64_t max = (uint64_t)c->max_messages;
		if (n > max)
			return mq_err(MQLOG_EFULL,
				      "%s: a batch of %zu records can never fit "
				      "under max-messages %llu",
				      p->dir, n, (unsigned long long)max);
		if (end - start + n > max) {
			if (c->full_policy == MQLOG_FULL_REJECT)
				return mq_err(MQLOG_EFULL,
					      "%s: %llu records, max-messages "
					      "%llu",
					      p->dir,
					      (unsigned long long)(end - start),
					      (unsigned long long)max);
			if (c->full_policy == MQLOG_FULL_BLOCK)
				return ADMIT_WAIT;
			/* DROP_OLDEST: exactly the newest max remain. */
			start = end + n - max;
			partition_publish_start(p, start);
			rc = retention_delete_below(p, start);
			if (rc)
				return rc;
		}
	}
	if (c->retention_bytes > 0) {
		uint64_t limit = (uint64_t)c->retention_bytes;
		if (size > limit)
			return mq_err(MQLOG_EFULL,
				      "%s: a batch of %zu bytes can never fit "
				      "under retention-bytes %llu",
				      p->dir, size, (unsigned long long)limit);
		if (MQ_LOAD_RELAXED(&st->total_bytes) + size > limit) {
			if (c->full_policy == MQLOG_FULL_REJECT)
				return mq_err(MQLOG_EFULL,
					      "%s: %llu bytes, retention-bytes "
					      "%llu",
					      p->dir,
					      (unsigned long long)MQ_LOAD_RELAXED(
						      &st->total_bytes),
					      (unsigned long long)limit);
			if (c->full_policy == MQLOG_FULL_BLOCK)
				return ADMIT_WAIT;
			/* DROP_OLDEST by bytes is whole segments, as in
			 * Kafka; the active segment always stays. */
			rc = drop_for_bytes(p, limit, size);
			if (rc)
				return rc;
		}
	}
	return ADMIT_OK;
}

void retention_wait(struct partition *p, uint32_t seen, uint64_t deadline_ns)
{
	struct pstate *st = p->st;
	uint64_t now = mq_mono_ns();

	if (now >= deadline_ns)
		return;
	state_wait_word(&st->space, &st->space_waiters, seen,
			(int)((deadline_ns - now) / 1000000u) + 1);
}

void retention_watermark(struct partition *p)
{
	struct mqlog *db = p->t->db;
	mqlog_partition_info pi;

	if (!db->on_watermark)
		return;
	partition_info_fill(p, &pi);
	if (pi.usage >= db->watermark) {
		if (!p->above_watermark) {
			p->above_watermark = true;
			db->on_watermark(db->watermark_arg, p->t->name, p->id,
					 pi.usage);
		}
	} else {
		p->above_watermark = false;
	}
}

/* ======================================================================== */
/* Entry points                                                             */
/* ======================================================================== */

int mqlog_partition_release(mqlog_topic *t, uint32_t partition,
			    uint64_t offset)
{
	struct partition *p;
	struct part_meta pm = { 0 };
	int rc;

	if (!t)
		return mq_err(MQLOG_EINVAL, "release: topic is NULL");
	rc = topic_partition(t, partition, &p);
	if (rc)
		return rc;
	if (t->db->rdonly || p->st_private)
		return mq_err(MQLOG_ERDONLY, "%s: opened read-only", p->dir);
	rc = partition_lock(p);
	if (rc)
		return rc;
	if (offset > p->st->end_offset) {
		rc = mq_err(MQLOG_ERANGE, "%s: release to %llu beyond the end "
					  "%llu",
			    p->dir, (unsigned long long)offset,
			    (unsigned long long)p->st->end_offset);
		goto out;
	}
	if (offset <= p->st->start_offset)
		goto out;
	/* Durable first: after a crash the records stay released. */
	(void)index_part_get(t->db->ix, t->meta.id, partition, &pm);
	if (pm.log_start < offset) {
		pm.log_start = offset;
		rc = index_part_put(t->db->ix, t->meta.id, partition, &pm);
		if (rc) {
			mq_err_wrap(rc, "%s: release", p->dir);
			goto out;
		}
	}
	partition_publish_start(p, offset);
	rc = retention_delete_below(p, offset);
out:
	partition_unlock(p);
	return rc;
}

/* Age and byte retention of one partition; append lock taken here. */
int retention_maintain(struct partition *p, int64_t now_ms)
{
	const mqlog_topic_config *c = rcfg(p);
	uint64_t base, next;
	int rc;

	if (p->t->db->rdonly || p->st_private)
		return 0;
	rc = partition_lock(p);
	if (rc)
		return rc;
	if (c->retention_ms > 0) {
		while (oldest_sealed(p, &base, &next)) {
			struct seg_meta sm;
			int64_t max_ts;
			if (index_seg_get(p->t->db->ix, p->t->meta.id, p->id,
					  base, &sm) == 0)
				max_ts = sm.max_ts;
			else
				break; /* unknown age: keep it */
			if (max_ts >= now_ms - c->retention_ms)
				break;
			if (next > p->st->start_offset)
				partition_publish_start(p, next);
			rc = retention_delete_below(p, next);
			if (rc)
				break;
		}
	}
	if (!rc && c->retention_bytes > 0 &&
	    c->full_policy == MQLOG_FULL_DROP_OLDEST)
		rc = drop_for_bytes(p, (uint64_t)c->retention_bytes, 0);
	if (!rc)
		rc = retention_delete_below(p, p->st->start_offset);
	partition_unlock(p);
	return rc;
}

int mqlog_maintain(mqlog *db, const char *topic)
{
	char **names = NULL;
	size_t count = 0;
	int rc = 0;
	int64_t now = mq_now_ms();

	if (!db)
		return mq_err(MQLOG_EINVAL, "maintain: db is NULL");
	if (db->rdonly)
		return 0;
	rc = topic_names(db, topic, &names, &count);
	if (rc)
		return rc;
	for (size_t i = 0; i < count && !rc; i++) {
		mqlog_topic *t;
		rc = mqlog_topic_open(db, names[i], &t);
		if (rc)
			break;
		const mqlog_topic_config *c = &t->meta.cfg;
		bool limited = c->retention_ms > 0 || c->retention_bytes > 0 ||
			       c->max_messages > 0;
		for (uint32_t pi = 0; limited && pi < c->partitions && !rc;
		     pi++) {
			struct partition *p;
			rc = topic_partition(t, pi, &p);
			if (!rc)
				rc = retention_maintain(p, now);
		}
		mqlog_topic_close(t);
	}
	mqlog_list_free(names, count);
	return rc;
}
