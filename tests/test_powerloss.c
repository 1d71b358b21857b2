/*
 * test_powerloss.c - the states a power cut can leave, and recovery from
 * each of them.
 *
 * A workload runs with the io layer's recorder on (io_record_start): every
 * open, write, truncate, fdatasync, directory fsync, rename, unlink and
 * mkdir of the engine lands in an in-memory log, with a note after each
 * acknowledged append.  The test then replays that log on a model file
 * system and, for every prefix of it (every moment the power could go),
 * builds the directories the cut could leave on disk:
 *
 *   - file data: everything a successful fdatasync covered is kept; writes
 *     issued since are kept, dropped, kept only up to some point, torn at a
 *     512-byte sector boundary (the head or the tail of the write reaching
 *     the disk), or present as zeros (the size reached the disk, the data
 *     did not);
 *   - directory entries (create, mkdir, rename, unlink): those followed by
 *     an fsync of their directory are kept; the others are kept, lost, kept
 *     up to some point, or all kept but one.
 *
 * The LMDB environment (meta/) is written by LMDB, not through the io
 * layer.  LMDB is crash-safe on its own (it may lose the last transactions
 * that were not synced, never more), so its possible states are the
 * copies the test takes at each acknowledgement: the one current at the
 * cut, an older one (the derived index lags the log), the next one (the
 * index leads: LMDB may keep entries whose batch never reached the disk),
 * and none at all (meta/ lost: topics are adopted from topic.conf).  Older
 * copies are never older than the last primary write (topic creation, a
 * log start persisted by retention), which LMDB syncs before going on.
 *
 * A group workload also consumes as member of group "cg" and commits after
 * every poll while the topic's appends are synced only now and then (sync
 * NONE): LMDB syncs each commit, so a cut can keep commits past the log
 * end it leaves.  Commits are primary writes too (no copy older than the
 * last one, none newer crosses one); each copy knows the offsets it holds.
 * There recovery must set every committed offset past the recovered end
 * back to the end, and a member joining after more records were appended
 * must start exactly there: not fail, not skip the records that were
 * appended at the offsets the lost commit had counted.
 *
 * Each state is opened, recovered and checked: every record acknowledged
 * under sync ALWAYS is there with its exact bytes (beyond what retention
 * may drop), offsets are dense, seeks by offset and by time land exactly,
 * nothing that was never written is returned, mqlog_verify is clean, and
 * appending continues at the end.  Identical states are checked once.
 */
#include <sys/wait.h>

#include "plmodel.h"

/* ======================================================================== */
/* Notes the workload puts in the log                                       */
/* ======================================================================== */

enum {
	NOTE_OPENED = 1,  /* mqlog_open returned */
	NOTE_CREATED = 2, /* mqlog_topic_create returned */
	NOTE_ACK = 3,	  /* an append (or a sync) acknowledged: part, end */
	NOTE_STEP = 4,	  /* an append returned, not yet acknowledged */
	NOTE_COMMIT = 5,  /* a group commit returned (durable in LMDB) */
};

static uint64_t note_tag(unsigned kind, uint32_t part, uint64_t end)
{
	return (uint64_t)kind << 56 | (uint64_t)part << 40 | end;
}

static unsigned note_kind(uint64_t tag)
{
	return (unsigned)(tag >> 56);
}
static uint32_t note_part(uint64_t tag)
{
	return (uint32_t)(tag >> 40) & 0xFFFF;
}
static uint64_t note_end(uint64_t tag)
{
	return tag & ((UINT64_C(1) << 40) - 1);
}

/* ======================================================================== */
/* Workloads                                                                */
/* ======================================================================== */

#define MAXPART 4

struct workload {
	const char *name;	 /* for messages */
	uint32_t partitions;	 /* topic partitions */
	uint64_t segment_bytes;	 /* roll size */
	uint32_t index_interval; /* index interval bytes */
	int64_t max_messages;	 /* retention (DROP_OLDEST), or unlimited */
	int appends;		 /* appends in the run */
	size_t vmax;		 /* value bound */
	int sync_every;		 /* 0: sync ALWAYS; N: sync NONE, and a
				  * mqlog_topic_sync after every Nth append
				  * acknowledges what came before */
	uint32_t seed;		 /* generator seed */
	bool group;		 /* also consume as group "cg", committing */
};

static void take_snap(struct run *r, const char *db)
{
	char path[4200];
	struct snap *s;
	int fd;
	struct stat st;

	r->snaps = realloc(r->snaps, (r->nsnaps + 1) * sizeof *r->snaps);
	ck_assert_ptr_nonnull(r->snaps);
	s = &r->snaps[r->nsnaps++];
	s->at = io_record_count() - 1;
	s->data = NULL;
	s->len = 0;
	memcpy(s->committed, r->committed, sizeof s->committed);
	snprintf(path, sizeof path, "%s/meta/data.mdb", db);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	ck_assert_int_eq(fstat(fd, &st), 0);
	s->len = (size_t)st.st_size;
	s->data = malloc(s->len ? s->len : 1);
	ck_assert_ptr_nonnull(s->data);
	for (size_t got = 0; got < s->len;) {
		ssize_t k = pread(fd, s->data + got, s->len - got, (off_t)got);
		ck_assert_int_gt(k, 0);
		got += (size_t)k;
	}
	close(fd);
}

static void note(struct run *r, const char *db, uint64_t tag)
{
	io_record_note(tag);
	take_snap(r, db);
}

/* Poll what is there and commit it; a note after the commit returned. */
static void group_step(struct run *r, const char *db, mqlog_consumer *gc,
		       uint32_t parts)
{
	mqlog_record recs[16];
	size_t n = 0;
	int rc = mqlog_consumer_poll(gc, recs, 16, 0, &n);

	ck_assert_msg(rc == 0, "poll: %s", mqlog_errmsg(NULL));
	if (n == 0)
		return;
	rc = mqlog_consumer_commit(gc);
	ck_assert_msg(rc == 0, "commit: %s", mqlog_errmsg(NULL));
	for (uint32_t p = 0; p < parts; p++) {
		uint64_t pos;
		if (mqlog_consumer_position(gc, p, &pos) == 0)
			r->committed[p] = pos;
	}
	note(r, db, note_tag(NOTE_COMMIT, 0, 0));
}

/* Run @w with the recorder on, under @root (an empty directory). */
static void run_workload(const struct workload *w, const char *root,
			 struct run *r)
{
	char db[4200];
	mqlog *h = NULL;
	mqlog_topic *t = NULL;
	mqlog_topic_config c;
	uint64_t end[MAXPART] = { 0 };
	mqlog_consumer *gc = NULL;
	int rc;

	memset(r, 0, sizeof *r);
	for (int p = 0; p < MAXPART; p++)
		r->committed[p] = GROUP_NONE;
	r->w = w;
	snprintf(r->root, sizeof r->root, "%s", root);
	snprintf(db, sizeof db, "%s/db", root);

	io_record_start();
	rc = mqlog_open(db, NULL, &h);
	ck_assert_msg(rc == 0, "open: %s", mqlog_errmsg(NULL));
	note(r, db, note_tag(NOTE_OPENED, 0, 0));
	c = h_cfg(w->partitions, w->segment_bytes,
		  w->sync_every ? MQLOG_SYNC_NONE : MQLOG_SYNC_ALWAYS);
	c.index_interval_bytes = w->index_interval;
	c.max_messages = w->max_messages;
	rc = mqlog_topic_create(h, "t", &c);
	ck_assert_msg(rc == 0, "create: %s", mqlog_errmsg(NULL));
	note(r, db, note_tag(NOTE_CREATED, 0, 0));
	t = h_topic(h, "t");
	if (w->group) {
		mqlog_consumer_options o;
		mqlog_consumer_options_init(&o);
		o.group = "cg";
		o.commit_mode = MQLOG_COMMIT_MANUAL;
		/* Its lease has long run out when the states are checked. */
		o.heartbeat_ms = 5;
		o.lease_ms = 10;
		rc = mqlog_consumer_open(t, &o, &gc);
		ck_assert_msg(rc == 0, "consumer: %s", mqlog_errmsg(NULL));
	}
	for (int i = 0; i < w->appends; i++) {
		uint32_t part = (uint32_t)i % w->partitions;
		size_t n = 1 + (size_t)(bt_mix((uint64_t)i + w->seed) % 3);
		uint64_t base = 0;
		rc = bt_append(t, w->seed, part, end[part], n, w->vmax,
			       MQLOG_SYNC_DEFAULT, &base);
		ck_assert_msg(rc == 0, "%s: append %d: %s", w->name, i,
			      mqlog_errmsg(NULL));
		ck_assert_uint_eq(base, end[part]);
		end[part] += n;
		if (!w->sync_every) {
			note(r, db, note_tag(NOTE_ACK, part, end[part]));
		} else if (i % w->sync_every == w->sync_every - 1) {
			rc = mqlog_topic_sync(t);
			ck_assert_msg(rc == 0, "sync: %s", mqlog_errmsg(NULL));
			for (uint32_t p = 0; p < w->partitions; p++)
				note(r, db, note_tag(NOTE_ACK, p, end[p]));
		} else {
			/* A copy of meta/ after every append: what LMDB may
			 * hold when the power goes before the next sync. */
			note(r, db, note_tag(NOTE_STEP, part, end[part]));
		}
		if (gc)
			group_step(r, db, gc, w->partitions);
	}
	mqlog_consumer_close(gc);
	mqlog_topic_close(t);
	mqlog_close(h);
	io_record_stop();
	r->nops = io_record_count();
}

static void free_run(struct run *r)
{
	for (size_t i = 0; i < r->nsnaps; i++)
		free(r->snaps[i].data);
	free(r->snaps);
	r->snaps = NULL;
	io_record_free();
}

/* ======================================================================== */
/* Checking one state                                                       */
/* ======================================================================== */

/* What the log says was acknowledged before entry @c. */
struct acked {
	bool created;	       /* the topic create returned */
	uint64_t end[MAXPART]; /* acknowledged end per partition */
};

static void acked_before(const struct run *r, size_t c, struct acked *a)
{
	memset(a, 0, sizeof *a);
	for (size_t i = 0; i < c; i++) {
		const struct io_rec *e = io_record_get(i);
		if (e->op != IO_REC_NOTE)
			continue;
		if (note_kind(e->tag) == NOTE_CREATED)
			a->created = true;
		if (note_kind(e->tag) == NOTE_ACK &&
		    note_end(e->tag) > a->end[note_part(e->tag)])
			a->end[note_part(e->tag)] = note_end(e->tag);
	}
}

static unsigned long group_states, group_clamped;

/*
 * The group of a group workload, after recovery left the partitions
 * ending at @rend: each committed offset is the one of the meta copy
 * (@meta), or the recovered end when that one is past it.  Then, with
 * records appended past every old commit, a new member starts each
 * partition exactly at its committed offset and reads on to the end.
 */
static int check_group(const struct run *r, mqlog *h, mqlog_topic *t, int meta,
		       const uint64_t *rend, char *why, size_t cap)
{
	const struct workload *w = r->w;
	uint64_t want[MAXPART], next[MAXPART], end[MAXPART];
	mqlog_group_info *gi = NULL;
	mqlog_consumer *c = NULL;
	mqlog_consumer_options o;
	bool any = false;
	int rc, ret = -1;

	group_states++;
	for (uint32_t p = 0; p < w->partitions; p++) {
		uint64_t sc = meta >= 0 ? r->snaps[meta].committed[p] :
					  GROUP_NONE;
		want[p] = sc == GROUP_NONE ? GROUP_NONE :
					     (sc < rend[p] ? sc : rend[p]);
		any |= sc != GROUP_NONE;
		if (sc != GROUP_NONE && sc > rend[p])
			group_clamped++;
	}
	rc = mqlog_group_describe(h, "cg", "t", &gi);
	if (rc == MQLOG_ENOENT && !any)
		return 0; /* no member ever joined in this copy */
	if (rc)
		return bt_fail(why, cap, "describe: %s: %s", mqlog_errname(rc),
			       mqlog_errmsg(NULL));
	for (uint32_t p = 0; p < w->partitions; p++) {
		const mqlog_group_partition_info *gp = &gi->partitions[p];
		if (want[p] == GROUP_NONE ?
			    gp->has_committed :
			    !gp->has_committed || gp->committed != want[p]) {
			bt_fail(why, cap,
				"partition %u: committed %s%" PRIu64
				", want %" PRIu64 " (copy holds %" PRIu64
				", log ends at %" PRIu64 ")",
				p, gp->has_committed ? "" : "none ",
				gp->committed, want[p],
				meta >= 0 ? r->snaps[meta].committed[p] : 0,
				rend[p]);
			mqlog_group_info_free(gi, 1);
			return -1;
		}
	}
	mqlog_group_info_free(gi, 1);

	/* Records at the offsets a lost commit had counted, and beyond. */
	for (uint32_t p = 0; p < w->partitions; p++) {
		mqlog_partition_info info = h_info(t, p);
		uint64_t sc = meta >= 0 ? r->snaps[meta].committed[p] :
					  GROUP_NONE;
		end[p] = info.end_offset;
		while (sc != GROUP_NONE && end[p] <= sc) {
			uint64_t base = 0, n = sc - end[p] + 1;
			rc = bt_append(t, w->seed, p, end[p], n > 16 ? 16 : n,
				       w->vmax, MQLOG_SYNC_NONE, &base);
			if (rc || base != end[p])
				return bt_fail(why, cap, "append: %s",
					       mqlog_errmsg(NULL));
			end[p] += n > 16 ? 16 : n;
		}
		next[p] = want[p] == GROUP_NONE ? 0 : want[p];
	}
	mqlog_consumer_options_init(&o);
	o.group = "cg";
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	o.heartbeat_ms = 5;
	o.lease_ms = 10;
	rc = mqlog_consumer_open(t, &o, &c);
	if (rc)
		return bt_fail(why, cap, "consumer open: %s",
			       mqlog_errmsg(NULL));
	for (double t0 = h_mono_ms();;) {
		mqlog_record recs[64];
		size_t n = 0;
		bool done = true;
		for (uint32_t p = 0; p < w->partitions; p++)
			done &= next[p] == end[p];
		if (done)
			break;
		if (h_mono_ms() - t0 > 5000) {
			bt_fail(why, cap,
				"the member read partition 0 to %" PRIu64
				" of %" PRIu64 " only",
				next[0], end[0]);
			goto out;
		}
		rc = mqlog_consumer_poll(c, recs, 64, 50, &n);
		if (rc) {
			bt_fail(why, cap, "poll: %s: %s", mqlog_errname(rc),
				mqlog_errmsg(NULL));
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			uint32_t p = recs[i].partition;
			if (recs[i].offset != next[p]) {
				bt_fail(why, cap,
					"the member read partition %u at %" PRIu64
					", want %" PRIu64 " (committed %" PRIu64
					", recovered end %" PRIu64 ")",
					p, recs[i].offset, next[p], want[p],
					rend[p]);
				goto out;
			}
			if (bt_check_rec(w->seed, p, w->vmax, &recs[i], why,
					 cap))
				goto out;
			next[p]++;
		}
	}
	ret = 0;
out:
	mqlog_consumer_close(c);
	return ret;
}

/* Recover the state in @dir (with meta copy @meta) and check it; returns
 * 0 or -1 with @why. */
static int check_state(const struct run *r, const char *dir, int meta,
		       const struct acked *a, char *why, size_t cap)
{
	uint64_t rend[MAXPART] = { 0 };
	const struct workload *w = r->w;
	char db[4200];
	mqlog *h = NULL;
	mqlog_topic *t = NULL;
	int rc, ret = -1;

	snprintf(db, sizeof db, "%s/db", dir);
	rc = mqlog_open(db, NULL, &h);
	if (rc)
		return bt_fail(why, cap, "open: %s: %s", mqlog_errname(rc),
			       mqlog_errmsg(NULL));
	rc = mqlog_topic_open(h, "t", &t);
	if (rc) {
		mqlog_close(h);
		if (rc == MQLOG_ENOENT && !a->created)
			return 0; /* the create never returned */
		return bt_fail(why, cap, "topic open: %s: %s",
			       mqlog_errname(rc), mqlog_errmsg(NULL));
	}
	for (uint32_t p = 0; p < w->partitions; p++) {
		struct bt_expect e = { w->seed, w->vmax, a->end[p], 0, 1, true };
		struct bt_seen s = { 0, 0, 0 };
		mqlog_partition_info info;
		if (w->max_messages > 0) {
			/* DROP_OLDEST keeps the newest max_messages; a start
			 * persisted for a batch that did not survive may be
			 * one batch further. */
			if (mqlog_partition_stat(t, p, &info) == 0 &&
			    info.end_offset > (uint64_t)w->max_messages)
				e.max_start = info.end_offset -
					      (uint64_t)w->max_messages + 3;
		}
		if (bt_check_partition(t, p, &e, &s, why, cap))
			goto out;
		rend[p] = s.end;
		uint64_t base = 0;
		rc = bt_append(t, w->seed, p, s.end, 1, w->vmax,
			       MQLOG_SYNC_ALWAYS, &base);
		if (rc || base != s.end) {
			bt_fail(why, cap,
				"append after recovery: %s at %" PRIu64
				" (end %" PRIu64 "): %s",
				mqlog_errname(rc), base, s.end,
				mqlog_errmsg(NULL));
			goto out;
		}
	}
	if (w->group && check_group(r, h, t, meta, rend, why, cap))
		goto out;
	if (bt_verify(h, NULL, why, cap))
		goto out;
	ret = 0;
out:
	mqlog_topic_close(t);
	mqlog_close(h);
	return ret;
}

/* ======================================================================== */
/* The driver                                                               */
/* ======================================================================== */

/* Distinct states seen (a small open-addressing set of hashes). */
struct hset {
	uint64_t *v;
	size_t cap, n;
};

static bool hset_add(struct hset *s, uint64_t h)
{
	if (!h)
		h = 1;
	if (s->n * 2 >= s->cap) {
		struct hset ns = { calloc(s->cap ? s->cap * 2 : 4096, 8),
				   s->cap ? s->cap * 2 : 4096, 0 };
		ck_assert_ptr_nonnull(ns.v);
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i])
				hset_add(&ns, s->v[i]);
		free(s->v);
		*s = ns;
	}
	for (size_t i = h % s->cap;; i = (i + 1) % s->cap) {
		if (s->v[i] == h)
			return false;
		if (!s->v[i]) {
			s->v[i] = h;
			s->n++;
			return true;
		}
	}
}

struct totals {
	unsigned long points;  /* crash points */
	unsigned long built;   /* states built */
	unsigned long checked; /* distinct states recovered and checked */
	unsigned long ops;     /* recorded operations */
};

static struct totals grand;

/* Is log entry @i the unlink of a segment file (retention)? */
static bool is_seg_unlink(size_t i)
{
	const struct io_rec *e = io_record_get(i);
	size_t n;
	return e->op == IO_REC_UNLINK && e->rc == 0 && e->path &&
	       (n = strlen(e->path)) > 4 && !strcmp(e->path + n - 4, ".seg");
}

/*
 * The meta copies a cut at entry @c may find: [lo, hi].  LMDB syncs every
 * primary write (the topic, a log start persisted before retention unlinks
 * segments), so no copy before the last one is possible; copies after
 * the cut are possible (the index leads) until the next primary write.
 */
static void meta_range(const struct run *r, size_t c, int *lo, int *cur,
		       int *hi)
{
	size_t last_primary = 0;
	bool have_primary = false;

	*lo = *cur = *hi = -1;
	for (size_t i = 0; i < c; i++) {
		const struct io_rec *e = io_record_get(i);
		if (is_seg_unlink(i) || (e->op == IO_REC_NOTE &&
					 (note_kind(e->tag) == NOTE_CREATED ||
					  note_kind(e->tag) == NOTE_COMMIT))) {
			last_primary = i;
			have_primary = true;
		}
	}
	for (size_t s = 0; s < r->nsnaps; s++) {
		if (r->snaps[s].at < c)
			*cur = (int)s;
		if (*lo < 0 &&
		    (!have_primary || r->snaps[s].at >= last_primary))
			*lo = (int)s;
	}
	if (*lo > *cur)
		*cur = *lo; /* the copy after the primary write */
	/*
	 * The next copy may lead only with what LMDB could already hold at
	 * the cut: entries of batches written before it (their bytes may
	 * not have reached the disk).  So every segment write up to that
	 * copy must come before the cut, and no primary write after it.
	 */
	if (*cur + 1 < (int)r->nsnaps) {
		size_t until = r->snaps[*cur + 1].at;
		bool later = false;
		for (size_t i = c; i <= until && i < r->nops; i++) {
			const struct io_rec *e = io_record_get(i);
			later |= is_seg_unlink(i) ||
				 (e->op == IO_REC_WRITE && e->len > 0) ||
				 (e->op == IO_REC_NOTE &&
				  (note_kind(e->tag) == NOTE_CREATED ||
				   note_kind(e->tag) == NOTE_COMMIT));
		}
		if (!later)
			*hi = *cur + 1;
	}
}

static void run_states(const struct run *r, const char *scratch,
		       struct hset *seen)
{
	static struct model m;
	char dir[4200], why[1024];
	struct acked a;
	unsigned long serial = 0;

	for (size_t c = 0; c <= r->nops; c++) {
		struct variant vs[256];
		size_t nv = 0;
		struct pend pend[512];
		size_t npend, nun = 0;
		int lo, cur, hi;

		/* Entries that change nothing on disk make no new state. */
		if (c > 0 && c < r->nops) {
			enum io_rec_op op = io_record_get(c - 1)->op;
			if (op == IO_REC_CLOSE)
				continue;
			if (op == IO_REC_OPEN && !(io_record_get(c - 1)->flags &
						   (O_CREAT | O_TRUNC)))
				continue;
		}
		grand.points++;
		replay(r, c, &m);
		acked_before(r, c, &a);
		meta_range(r, c, &lo, &cur, &hi);
		npend = collect_pending(&m, pend, 512);
		for (size_t k = 0; k < m.ndops; k++)
			nun += !m.dops[k].synced;

#define V(...)                                              \
	do {                                                \
		ck_assert_uint_lt(nv, 256);                 \
		vs[nv++] = (struct variant){ __VA_ARGS__ }; \
	} while (0)
		V(DIRS_ALL, 0, DATA_ALL, 0, 0, cur, "process crash");
		V(DIRS_SYNCED, 0, DATA_NONE, 0, 0, cur, "only synced");
		if (lo != cur)
			V(DIRS_SYNCED, 0, DATA_NONE, 0, 0, lo,
			  "only synced, index lags");
		if (hi >= 0) {
			V(DIRS_SYNCED, 0, DATA_NONE, 0, 0, hi,
			  "only synced, index leads");
			V(DIRS_ALL, 0, DATA_ALL, 0, 0, hi, "all, index leads");
		}
		V(DIRS_SYNCED, 0, DATA_NONE, 0, 0, -1,
		  "only synced, meta lost");
		V(DIRS_ALL, 0, DATA_NONE, 0, 0, cur, "entries kept, data lost");
		V(DIRS_SYNCED, 0, DATA_ALL, 0, 0, cur,
		  "data kept, entries lost");
		V(DIRS_ALL, 0, DATA_ZERO, 0, 0, cur, "zero-filled");
		for (size_t k = 1; k < npend && k < 8; k++)
			V(DIRS_ALL, 0, DATA_PREFIX, k, 0, cur, "data prefix");
		for (size_t k = 0; k + 1 < npend && k < 8; k++)
			V(DIRS_ALL, 0, DATA_ALL_BUT, k, 0, cur,
			  "one write lost, later ones kept");
		for (size_t k = 0; k < npend && k < 4; k++) {
			const struct io_rec *e = io_record_get(pend[k].at);
			if (e->op != IO_REC_WRITE)
				continue;
			uint64_t first = (e->off / 512 + 1) * 512;
			uint64_t last = e->off + e->len;
			uint64_t nsec =
				first < last ? (last - first + 511) / 512 : 0;
			uint64_t step = nsec > 6 ? nsec / 6 : 1;
			for (uint64_t cut = first; cut < last;
			     cut += 512 * step) {
				V(DIRS_ALL, 0, DATA_TORN_HEAD, k, cut, cur,
				  "torn write, head kept");
				V(DIRS_ALL, 0, DATA_TORN_TAIL, k, cut, cur,
				  "torn write, tail kept");
			}
		}
		for (size_t u = 0; u < nun && u < 8; u++) {
			V(DIRS_ALL_BUT, u, DATA_ALL, 0, 0, cur,
			  "one entry lost");
			V(DIRS_PREFIX, u, DATA_NONE, 0, 0, cur,
			  "entries prefix");
		}
#undef V
		for (size_t i = 0; i < nv; i++) {
			snprintf(dir, sizeof dir, "%s/s%lu", scratch, serial++);
			uint64_t h = build_state(r, &m, &vs[i], dir);
			grand.built++;
			if (hset_add(seen, h)) {
				grand.checked++;
				if (check_state(r, dir, vs[i].meta, &a, why,
						sizeof why)) {
					/* The state as it was before recovery,
					 * for whoever debugs this. */
					char orig[4300];
					snprintf(orig, sizeof orig, "%s.orig",
						 dir);
					build_state(r, &m, &vs[i], orig);
					ck_abort_msg(
						"%s: state after op %zu/%zu "
						"(%s, meta %d of [%d,%d,%d]): "
						"%s (kept in %s)",
						r->w->name, c, r->nops,
						vs[i].label, vs[i].meta, lo,
						cur, hi, why, dir);
				}
			}
			fx_rmtree(dir);
		}
		model_free(&m);
	}
}

static void powerloss(const struct workload *w)
{
	char *scratch = bt_scratch();
	char root[4200];
	struct run r;
	struct hset seen = { 0 };

	ck_assert_ptr_nonnull(scratch);
	snprintf(root, sizeof root, "%s/root", scratch);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	run_workload(w, root, &r);
	grand.ops += r.nops;
	run_states(&r, scratch, &seen);
	free(seen.v);
	free_run(&r);
	fx_rmtree(scratch);
	free(scratch);
}

/* ------------------------------------------------------------------------ */

static const struct workload workloads[] = {
	/* Rolls every few batches; an index entry for most batches. */
	{ "rolls", 1, 4096, 300, MQLOG_UNLIMITED, 40, 600, 0, 11, false },
	/* Two partitions appended in turn. */
	{ "two partitions", 2, 4096, 1, MQLOG_UNLIMITED, 30, 300, 0, 12,
	  false },
	/* DROP_OLDEST retention deletes segments as it goes. */
	{ "retention", 1, 4096, 500, 12, 40, 400, 0, 13, false },
	/* Appends under sync NONE, acknowledged by mqlog_topic_sync. */
	{ "topic sync", 2, 4096, 400, MQLOG_UNLIMITED, 30, 500, 3, 14, false },
	/* Sync NONE with an entry for every batch: the buffered index is
	 * flushed (every 32 entries) well before the data is synced. */
	{ "index ahead", 1, 1 << 20, 1, MQLOG_UNLIMITED, 70, 120, 35, 15,
	  false },
	/* A group member consumes and commits (durably) after every append
	 * while the log is synced at every 5th: commits run ahead of the
	 * durable log. */
	{ "group offsets", 2, 4096, 400, MQLOG_UNLIMITED, 30, 300, 5, 16,
	  true },
};

START_TEST(test_powerloss)
{
	unsigned long clamped = group_clamped;

	powerloss(&workloads[_i]);
	/* The group workload must reach the case it is there for. */
	if (workloads[_i].group)
		ck_assert_msg(group_clamped > clamped,
			      "no state had a commit past the recovered end");
}
END_TEST

static void report(void)
{
	printf("powerloss: %lu operations recorded, %lu crash points, %lu "
	       "states built, %lu distinct states recovered and checked; "
	       "group: %lu states, %lu committed offsets past the recovered "
	       "end\n",
	       grand.ops, grand.points, grand.built, grand.checked,
	       group_states, group_clamped);
}

int main(void)
{
	Suite *s = suite_create("powerloss");
	TCase *tc = tcase_create("powerloss");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_powerloss, 0,
			    (int)(sizeof workloads / sizeof workloads[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	/* The totals are added up across tests: run them in this process. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	report();
	return nf == 0 ? 0 : 1;
}
