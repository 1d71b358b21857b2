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
 * mistake for corruption.
 *
 * Readers.  Every reader of a writable directory pins the segment it has
 * mapped in the shared state (state.c).  No segment at or above the lowest
 * live pin is unlinked: the log start may still move past it (the count
 * limit, interest, release: exact), but the file stays until the pin moves
 * on, and the next deletion attempt (append, roll, commit, maintain)
 * removes it.  The byte and age limits, which free whole segments, stop at
 * a pinned segment without moving the start, so a reader inside it loses
 * nothing; a byte limit may then be exceeded until the reader moves on.
 * Liveness of the pin owners (pid and start time; kill -9 frees a pin) is
 * checked at most every PIN_CHECK_NS per partition and process, so the
 * append path makes no syscall for it.
 *
 * Who deletes.  Deletion takes no append lock (deleters in threads and
 * processes may race: the start in LMDB is only ever raised, in one
 * transaction, and only a successful unlink counts its bytes), so the
 * costly part stays off the producers' path where it can: under the count
 * limit the appender only flags the partition and the db's background
 * thread deletes (retention_reap); after a commit under interest
 * retention the committer deletes once the append lock is released.  The
 * byte limit (which must make room before the append) and maintenance
 * delete under the append lock.
 *
 * Interest retention (cfg.interest).  The start moves up to the lowest
 * committed offset over the registered groups (index_interest_floor), in
 * shared memory and lazily in LMDB; recovery recomputes it from the
 * durable committed offsets, so a crash can only leave it lower than it
 * was, never above a record some group has not committed.
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

#define PIN_CHECK_NS 100000000ull /* 100 ms */

/* The lowest segment a live reader pins (PIN_NONE: none). */
static uint64_t lowest_pin(struct partition *p)
{
	uint64_t now = mq_mono_ns();
	bool check = now - MQ_LOAD_RELAXED(&p->pins_checked_ns) >= PIN_CHECK_NS;

	if (check)
		MQ_STORE_RELAXED(&p->pins_checked_ns, now);
	return state_pin_lowest(p->st, check);
}

/* The interest floor clamped to @end; false when no group is registered
 * (or the topic has no interest retention). */
static bool interest_floor(const struct partition *p, uint64_t end,
			   uint64_t *floor)
{
	struct interest_floor f;

	if (!rcfg(p)->interest ||
	    index_interest_floor(p->t->db->ix, p->t->meta.id, p->id, &f) != 0 ||
	    f.groups == 0)
		return false;
	*floor = f.floor < end ? f.floor : end;
	return true;
}

uint64_t retention_recovered_start(const struct partition *p,
				   uint64_t persisted, uint64_t first_base,
				   uint64_t end)
{
	const mqlog_topic_config *c = rcfg(p);
	uint64_t start = persisted > first_base ? persisted : first_base;
	uint64_t floor;

	if (interest_floor(p, end, &floor) && floor > start)
		start = floor;
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
	char path[MQ_PATH_MAX];
	uint64_t *del = NULL, freed = 0, pin = PIN_NONE;
	uint64_t seg_base = MQ_LOAD(&st->seg_base);
	size_t ndel = 0, gone = 0;
	int rc = 0;

	/* Sealed segments whose successor starts at or below the new start
	 * hold nothing readable.  The active segment is never deleted, nor
	 * any segment at or above the lowest reader pin. */
	pthread_mutex_lock(&p->mu);
	bool any = p->nbases >= 2 && p->bases[1] <= start &&
		   p->bases[0] < seg_base;
	pthread_mutex_unlock(&p->mu);
	if (!any)
		return 0;
	/* One deleter per partition and process; other processes may
	 * delete the same files: only our successful unlinks count. */
	pthread_mutex_lock(&p->del_mu);
	pin = lowest_pin(p);
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i + 1 < p->nbases; i++) {
		if (p->bases[i + 1] > start || p->bases[i] >= seg_base ||
		    p->bases[i] >= pin)
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
		goto out;
	if (!del) {
		rc = mq_err(MQLOG_ENOMEM, "%s: retention", p->dir);
		goto out;
	}

	/* 1. The start is durable before any file goes. */
	rc = index_part_raise_start(p->t->db->ix, p->t->meta.id, p->id, start,
				    true);
	if (rc) {
		mq_err_wrap(rc, "%s: persist log start %llu", p->dir,
			    (unsigned long long)start);
		goto out;
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
		if (rc == 0)
			freed += sz;
		rc = 0;
		gone = i + 1;
		MQ_CRASH_POINT("retention.after_unlink");
	}
	if (gone) {
		int r = io_fsync_dir(p->dir);
		if (r && !rc)
			rc = mq_err(r, "%s: fsync after deleting segments",
				    p->dir);
	}
	pthread_mutex_lock(&p->mu);
	size_t keep = 0;
	for (size_t i = 0; i < p->nbases; i++) {
		bool drop = false;
		for (size_t j = 0; j < gone; j++)
			drop |= p->bases[i] == del[j];
		if (!drop)
			p->bases[keep++] = p->bases[i];
	}
	p->nbases = keep;
	uint64_t first = p->nbases ? p->bases[0] : start;
	pthread_mutex_unlock(&p->mu);
	/* Appends add to the total concurrently: subtract atomically,
	 * never below zero. */
	uint64_t tb = MQ_LOAD_RELAXED(&st->total_bytes);
	while (freed &&
	       !__atomic_compare_exchange_n(&st->total_bytes, &tb,
					    tb > freed ? tb - freed : 0, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	/* Producers blocked on the byte limit, in any process. */
	if (freed)
		state_wake_word(&st->space, &st->space_waiters);
	/* Entries of deleted segments are never used again. */
	if (gone)
		(void)index_trim(p->t->db->ix, p->t->meta.id, p->id, first);
out:
	pthread_mutex_unlock(&p->del_mu);
	free(del);
	return rc;
}

/*
 * The count limit moves the start on every append; the segments it leaves
 * wholly below the start are deleted by the db's background thread, so
 * that the appender pays neither the syncs nor the unlinks (append lock
 * held here; cheap when there is nothing to delete).
 */
static void delete_later(struct partition *p, uint64_t start)
{
	pthread_mutex_lock(&p->mu);
	bool any = p->nbases >= 2 && p->bases[1] <= start &&
		   p->bases[0] < p->st->seg_base;
	pthread_mutex_unlock(&p->mu);
	if (!any || __atomic_exchange_n(&p->reap, true, __ATOMIC_ACQ_REL))
		return;
	/* The appender starts the thread once the append lock is gone. */
	__atomic_store_n(&p->reap_kick, true, __ATOMIC_RELEASE);
}

int retention_reap(struct partition *p)
{
	if (!__atomic_exchange_n(&p->reap, false, __ATOMIC_ACQ_REL))
		return 0;
	return retention_delete_below(p, MQ_LOAD(&p->st->start_offset));
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
		if (base >= lowest_pin(p))
			break; /* a reader is in it: over the limit for now */
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
			return mq_err(
				MQLOG_EFULL,
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
			delete_later(p, start);
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
				return mq_err(
					MQLOG_EFULL,
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
	double usage;

	if (!db->on_watermark)
		return;
	/* After every append of a limited topic: no file is read. */
	usage = partition_usage(p);
	if (usage >= db->watermark) {
		if (!p->above_watermark) {
			p->above_watermark = true;
			db->on_watermark(db->watermark_arg, p->t->name, p->id,
					 usage);
		}
	} else {
		p->above_watermark = false;
	}
}

/*
 * Move the start up to the interest floor; append lock held.  The new
 * start goes to LMDB lazily: recovery recomputes the floor anyway, and the
 * persisted start only keeps records freed before a group registered from
 * coming back after a crash.
 */
static int interest_advance(struct partition *p)
{
	uint64_t floor;
	int rc;

	if (!interest_floor(p, p->st->end_offset, &floor) ||
	    floor <= p->st->start_offset)
		return 0;
	partition_publish_start(p, floor);
	rc = index_part_raise_start(p->t->db->ix, p->t->meta.id, p->id, floor,
				    false);
	if (rc)
		return mq_err_wrap(rc, "%s: persist log start %llu", p->dir,
				   (unsigned long long)floor);
	return 0;
}

/* ======================================================================== */
/* Entry points                                                             */
/* ======================================================================== */

int mqlog_partition_release(mqlog_topic *t, uint32_t partition, uint64_t offset)
{
	struct partition *p;
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
		rc = mq_err(MQLOG_ERANGE,
			    "%s: release to %llu beyond the end "
			    "%llu",
			    p->dir, (unsigned long long)offset,
			    (unsigned long long)p->st->end_offset);
		goto out;
	}
	if (offset <= p->st->start_offset)
		goto out;
	/* Durable first: after a crash the records stay released. */
	rc = index_part_raise_start(t->db->ix, t->meta.id, partition, offset,
				    true);
	if (rc) {
		mq_err_wrap(rc, "%s: release", p->dir);
		goto out;
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
			if (base >= lowest_pin(p))
				break; /* a reader is in it: later */
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
		rc = interest_advance(p);
	if (!rc)
		rc = retention_delete_below(p, p->st->start_offset);
	partition_unlock(p);
	return rc;
}

int retention_interest(struct partition *p)
{
	int rc;

	if (!rcfg(p)->interest || p->t->db->rdonly || p->st_private)
		return 0;
	rc = partition_lock(p);
	if (rc)
		return rc;
	rc = interest_advance(p);
	partition_unlock(p);
	/* The files go without the append lock: producers do not wait for
	 * the syncs and unlinks; the committer pays them. */
	if (!rc)
		rc = retention_delete_below(p, MQ_LOAD(&p->st->start_offset));
	return rc;
}

int retention_interest_commit(struct mqlog_topic *t, const uint32_t *parts,
			      const uint64_t *offsets, size_t n)
{
	int rc = 0;

	if (!t->meta.cfg.interest || t->db->rdonly)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct partition *p;
		int r = topic_partition(t, parts[i], &p);
		/* A commit at or below the start cannot free anything. */
		if (!r && offsets &&
		    offsets[i] <= MQ_LOAD_RELAXED(&p->st->start_offset))
			continue;
		if (!r)
			r = retention_interest(p);
		if (r && !rc)
			rc = r;
	}
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
			       c->max_messages > 0 || c->interest;
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

int mqlog_partition_interest(mqlog_topic *t, uint32_t partition,
			     mqlog_interest_info *info)
{
	struct interest_floor f;
	struct partition *p;
	struct pview v;
	int rc;

	if (!t || !info)
		return mq_err(MQLOG_EINVAL,
			      "partition interest: NULL argument");
	rc = topic_partition(t, partition, &p);
	if (rc)
		return rc;
	rc = index_interest_floor(t->db->ix, t->meta.id, partition, &f);
	if (rc)
		return mq_err_wrap(rc, "%s: interest floor", p->dir);
	state_read_view(p->st, &v);
	memset(info, 0, sizeof *info);
	info->groups = f.groups;
	if (f.groups == 0) {
		info->floor = v.start_offset;
		return 0;
	}
	info->floor = f.floor < v.end_offset ? f.floor : v.end_offset;
	_Static_assert(sizeof info->group >= sizeof f.group,
		       "a group name fits mqlog_interest_info");
	memcpy(info->group, f.group, sizeof f.group);
	return 0;
}
