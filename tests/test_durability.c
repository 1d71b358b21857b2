/*
 * test_durability.c - sync policies and I/O failures: ALWAYS appends are
 * durable when they return, a failed fdatasync fail-stops the partition
 * until reopen, a failed write changes nothing, and concurrent ALWAYS
 * appenders (group commit) all succeed with dense offsets.
 */
#include <pthread.h>

#include "helpers.h"
#include "internal.h"

static const char *dbdir(void)
{
	return fx_dir;
}

/* ------------------------------------------------------------------------ */

/* An append under sync ALWAYS (topic policy or per call), and an explicit
 * topic or directory sync, leave durable_offset at the log end. */
START_TEST(test_sync_always_durable)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config ca = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	mqlog_topic_config cn = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *ta, *tn;
	struct mqlog_partition_info info;
	mqlog_msg m = h_msg("durable", MQLOG_TIMESTAMP_NOW);

	h_create(db, "always", &ca);
	h_create(db, "none", &cn);
	ta = h_topic(db, "always");
	tn = h_topic(db, "none");
	for (int i = 0; i < 5; i++) {
		h_append1(ta, 0, "a");
		info = h_info(ta, 0);
		ck_assert_uint_eq(info.end_offset, (uint64_t)i + 1);
		ck_assert_uint_ge(info.durable_offset, info.end_offset);
	}

	h_append1(tn, 0, "n");
	ck_assert_int_eq(mqlog_append(tn, 0, &m, 1, MQLOG_SYNC_ALWAYS, NULL),
			 0);
	info = h_info(tn, 0);
	ck_assert_uint_ge(info.durable_offset, info.end_offset);

	h_append1(tn, 0, "n");
	h_append1(tn, 0, "n");
	ck_assert_int_eq(mqlog_topic_sync(tn), 0);
	info = h_info(tn, 0);
	ck_assert_uint_eq(info.end_offset, 4);
	ck_assert_uint_ge(info.durable_offset, 4);

	h_append1(tn, 0, "n");
	ck_assert_int_eq(mqlog_sync(db), 0);
	info = h_info(tn, 0);
	ck_assert_uint_ge(info.durable_offset, 5);
	ck_assert_uint_le(info.durable_offset, info.end_offset);

	mqlog_topic_close(ta);
	mqlog_topic_close(tn);
	mqlog_close(db);
}
END_TEST

/* Under sync INTERVAL a background flush makes appended records durable
 * within a few intervals (timing-related: polls the durable offset). */
START_TEST(test_sync_interval)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_INTERVAL);
	mqlog_topic *t;
	double t0;
	c.sync_interval_ms = 50;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < 10; i++)
		h_append1(t, 0, "interval");
	t0 = h_mono_ms();
	while (h_info(t, 0).durable_offset < 10 && h_mono_ms() - t0 < 3000)
		h_sleep_ms(10);
	ck_assert_msg(h_info(t, 0).durable_offset >= 10,
		      "durable_offset %" PRIu64 " after %.0f ms",
		      h_info(t, 0).durable_offset, h_mono_ms() - t0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A failed fdatasync fail-stops the partition: that append fails, every
 * later one returns MQLOG_EFAILED (even once the disk is fine again), the
 * other partitions and earlier records stay readable, and a reopen clears
 * the state with every acknowledged record present. */
START_TEST(test_fail_stop)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(2, 1 << 20, MQLOG_SYNC_ALWAYS);
	mqlog_topic *t;
	mqlog_msg m = h_msg("after failure", 5);
	struct h_recs rs = { 0 };
	uint64_t end;
	int rc;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	h_append1(t, 0, "acked-0");
	h_append1(t, 0, "acked-1");
	h_append1(t, 0, "acked-2");
	h_append1(t, 1, "other-0");

	io_fault_set(IO_OP_SYNC, 1, EIO, false);
	rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
	ck_assert_msg(rc < 0, "append with a failing fdatasync returned %d",
		      rc);
	H_ASSERT_MSG(db);
	ck_assert_int_eq(h_info(t, 0).failed, 1);

	rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
	ck_assert_int_eq(rc, MQLOG_EFAILED);
	H_ASSERT_MSG(db);
	io_fault_clear();
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EFAILED);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_NONE, NULL),
			 MQLOG_EFAILED);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_ALWAYS, NULL),
			 MQLOG_EFAILED);
	ck_assert_int_eq(h_info(t, 0).failed, 1);

	/* The other partition is not affected. */
	ck_assert_int_eq(h_info(t, 1).failed, 0);
	ck_assert_uint_eq(h_append1(t, 1, "other-1"), 1);

	/* Earlier records are still readable. */
	rc = h_read_from(t, 0, MQLOG_OFFSET_EARLIEST, &rs);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_ge(rs.n, 3);
	ck_assert_str_eq(rs.r[0].val, "acked-0");
	ck_assert_str_eq(rs.r[1].val, "acked-1");
	ck_assert_str_eq(rs.r[2].val, "acked-2");
	h_recs_free(&rs);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* Reopen: the failure is gone, acknowledged records are there (the
	 * unacknowledged batch may or may not be), appends work densely. */
	db = h_open(dbdir());
	t = h_topic(db, "t");
	ck_assert_int_eq(h_info(t, 0).failed, 0);
	end = h_info(t, 0).end_offset;
	ck_assert(end == 3 || end == 4);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, end);
	ck_assert_str_eq(rs.r[0].val, "acked-0");
	ck_assert_str_eq(rs.r[2].val, "acked-2");
	h_recs_free(&rs);
	ck_assert_uint_eq(h_append1(t, 0, "reopened"), end);
	ck_assert_uint_ge(h_info(t, 0).durable_offset, end + 1);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, end + 1);
	for (size_t i = 0; i < rs.n; i++)
		ck_assert_uint_eq(rs.r[i].off, i);
	ck_assert_str_eq(rs.r[end].val, "reopened");
	h_recs_free(&rs);
	ck_assert_uint_eq(h_info(t, 1).end_offset, 2);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* An explicit topic sync that fails reports the error and fail-stops the
 * partition as well (a retried fsync cannot be trusted). */
START_TEST(test_fail_stop_on_topic_sync)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_msg m = h_msg("x", 5);
	int rc;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	h_append1(t, 0, "a");
	io_fault_set(IO_OP_SYNC, 1, EIO, false);
	rc = mqlog_topic_sync(t);
	io_fault_clear();
	ck_assert_msg(rc < 0, "topic sync with a failing fdatasync returned %d",
		      rc);
	H_ASSERT_MSG(db);
	ck_assert_int_eq(h_info(t, 0).failed, 1);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EFAILED);
	mqlog_topic_close(t);
	mqlog_close(db);

	db = h_open(dbdir());
	t = h_topic(db, "t");
	ck_assert_int_eq(h_info(t, 0).failed, 0);
	ck_assert_uint_eq(h_append1(t, 0, "b"), 1);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A failed write (ENOSPC) returns -ENOSPC and changes nothing; the next
 * append succeeds and offsets stay dense. */
START_TEST(test_write_fault)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	const char *three[3] = { "x", "y", "z" };
	mqlog_msg m[3];
	struct mqlog_partition_info before, after;
	struct h_recs rs = { 0 };
	uint64_t size;
	int rc;

	for (int i = 0; i < 3; i++)
		m[i] = h_msg(three[i], 7);
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	h_append1(t, 0, "r0");
	h_append1(t, 0, "r1");
	before = h_info(t, 0);
	size = h_size(h_seg_path(dbdir(), "t", 0, 0));

	for (int sync = MQLOG_SYNC_NONE; sync <= MQLOG_SYNC_ALWAYS;
	     sync += MQLOG_SYNC_ALWAYS) {
		io_fault_set(IO_OP_WRITE, 1, ENOSPC, false);
		rc = mqlog_append(t, 0, m, 3, sync, NULL);
		io_fault_clear();
		ck_assert_int_eq(rc, -ENOSPC);
		H_ASSERT_MSG(db);
		after = h_info(t, 0);
		ck_assert_uint_eq(after.end_offset, before.end_offset);
		ck_assert_uint_eq(after.bytes, before.bytes);
		ck_assert_int_eq(after.failed, 0);
		ck_assert_uint_eq(h_size(h_seg_path(dbdir(), "t", 0, 0)), size);
	}

	ck_assert_uint_eq(h_append_strs(t, 0, three, 3, 7, MQLOG_SYNC_DEFAULT),
			  2);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 5);
	for (size_t i = 0; i < rs.n; i++)
		ck_assert_uint_eq(rs.r[i].off, i);
	ck_assert_str_eq(rs.r[1].val, "r1");
	ck_assert_str_eq(rs.r[2].val, "x");
	ck_assert_str_eq(rs.r[4].val, "z");
	h_recs_free(&rs);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);

	db = h_open(dbdir());
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 5);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A failure to create the next segment at a roll fails that append without
 * changing the log; the following append rolls and lands at the right
 * offset. */
START_TEST(test_roll_fault)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	static char big[3000];
	mqlog_msg m;
	struct h_recs rs = { 0 };
	int rc;

	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	h_append1(t, 0, big);
	ck_assert_uint_eq(h_info(t, 0).segments, 1);
	m = h_msg(big, 9);

	for (int op = IO_OP_OPEN; op <= IO_OP_DIRSYNC; op++) {
		uint64_t end = h_info(t, 0).end_offset;
		if (op == IO_OP_WRITE || op == IO_OP_SYNC)
			continue;
		io_fault_set((enum io_op)op, 1, EIO, false);
		rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
		io_fault_clear();
		if (rc == 0) {
			/* The fault did not hit this roll (or was harmless):
			 * the record must then be there. */
			ck_assert_uint_eq(h_info(t, 0).end_offset, end + 1);
		} else {
			H_ASSERT_MSG(db);
			ck_assert_uint_eq(h_info(t, 0).end_offset, end);
		}
		/* Either way the next append works and is dense. */
		end = h_info(t, 0).end_offset;
		if (h_info(t, 0).failed)
			break; /* a failed directory sync may fail-stop */
		ck_assert_uint_eq(h_append1(t, 0, big), end);
	}
	mqlog_topic_close(t);
	mqlog_close(db);

	db = h_open(dbdir());
	t = h_topic(db, "t");
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, h_info(t, 0).end_offset);
	for (size_t i = 0; i < rs.n; i++) {
		ck_assert_uint_eq(rs.r[i].off, i);
		ck_assert_str_eq(rs.r[i].val, big);
	}
	h_recs_free(&rs);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Group commit                                                             */
/* ------------------------------------------------------------------------ */

#define GC_THREADS 8
#define GC_PER	   200

struct gc_thread {
	mqlog_topic *t;	      /* shared topic */
	int id;		      /* thread number */
	int err;	      /* first error */
	uint64_t off[GC_PER]; /* offsets returned */
	uint64_t durable_ok; /* appends after which durable >= own offset + 1 */
};

static void *gc_run(void *arg)
{
	struct gc_thread *g = arg;
	char val[32];
	for (int i = 0; i < GC_PER; i++) {
		mqlog_msg m;
		struct mqlog_partition_info info;
		int rc;
		snprintf(val, sizeof val, "G%d:%04d", g->id, i);
		m = h_msg(val, MQLOG_TIMESTAMP_NOW);
		rc = mqlog_append(g->t, 0, &m, 1, MQLOG_SYNC_DEFAULT,
				  &g->off[i]);
		if (rc != 0) {
			g->err = rc;
			return NULL;
		}
		if (mqlog_partition_stat(g->t, 0, &info) == 0 &&
		    info.durable_offset > g->off[i])
			g->durable_ok++;
	}
	return NULL;
}

/* Eight threads making 200 ALWAYS appends each to one partition all
 * succeed, each is durable when it returns, and offsets are dense with
 * every thread's records in its own order. */
START_TEST(test_group_commit)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	mqlog_topic *t;
	static struct gc_thread g[GC_THREADS];
	pthread_t th[GC_THREADS];
	struct h_recs rs = { 0 };
	int next[GC_THREADS] = { 0 };

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < GC_THREADS; i++) {
		g[i].t = t;
		g[i].id = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, gc_run, &g[i]),
				 0);
	}
	for (int i = 0; i < GC_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < GC_THREADS; i++) {
		ck_assert_msg(g[i].err == 0, "thread %d: %s", i,
			      mqlog_errname(g[i].err));
		ck_assert_uint_eq(g[i].durable_ok, GC_PER);
	}
	ck_assert_uint_eq(h_info(t, 0).end_offset, GC_THREADS * GC_PER);
	ck_assert_uint_ge(h_info(t, 0).durable_offset, GC_THREADS * GC_PER);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, GC_THREADS * GC_PER);
	for (size_t i = 0; i < rs.n; i++) {
		int id, seq;
		ck_assert_uint_eq(rs.r[i].off, i);
		ck_assert_int_eq(sscanf(rs.r[i].val, "G%d:%d", &id, &seq), 2);
		ck_assert(id >= 0 && id < GC_THREADS);
		ck_assert_int_eq(seq, next[id]);
		ck_assert_uint_eq(g[id].off[seq], i);
		next[id]++;
	}
	h_recs_free(&rs);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Group commit: rolls, sync failures and limits inside a group             */
/* ------------------------------------------------------------------------ */

#define GX_THREADS 8
#define GX_MAX	   400

struct gx_thread {
	mqlog_topic *t;
	int id;
	int per;	      /* appends to try */
	bool stop_on_error;   /* stop at the first failure */
	int nok;	      /* acknowledged */
	uint64_t off[GX_MAX]; /* their offsets */
	int seq[GX_MAX];      /* and sequence numbers */
	int nerr;	      /* failed appends */
	int err;	      /* the last failure */
	char msg[256];	      /* and its message */
};

static void *gx_run(void *arg)
{
	struct gx_thread *g = arg;
	char val[96];

	for (int i = 0; i < g->per; i++) {
		/* Lengths vary so that batches straddle segment ends. */
		int pad = (g->id * 7 + i * 13) % 60;
		snprintf(
			val, sizeof val, "X%d:%04d:%.*s", g->id, i, pad,
			"............................................................");
		mqlog_msg m = h_msg(val, MQLOG_TIMESTAMP_NOW);
		uint64_t off;
		int rc = mqlog_append(g->t, 0, &m, 1, MQLOG_SYNC_ALWAYS, &off);
		if (rc == 0) {
			g->off[g->nok] = off;
			g->seq[g->nok++] = i;
			continue;
		}
		g->nerr++;
		g->err = rc;
		snprintf(g->msg, sizeof g->msg, "%s", mqlog_errmsg(NULL));
		if (g->stop_on_error)
			break;
	}
	return NULL;
}

static void gx_start(struct gx_thread *g, pthread_t *th, mqlog_topic *t,
		     int per, bool stop)
{
	for (int i = 0; i < GX_THREADS; i++) {
		memset(&g[i], 0, sizeof g[i]);
		g[i].t = t;
		g[i].id = i;
		g[i].per = per;
		g[i].stop_on_error = stop;
		ck_assert_int_eq(pthread_create(&th[i], NULL, gx_run, &g[i]),
				 0);
	}
	for (int i = 0; i < GX_THREADS; i++)
		pthread_join(th[i], NULL);
}

/* Every acknowledged append of @g is in @t at its offset with its value. */
static void gx_check_acked(mqlog_topic *t, const struct gx_thread *g)
{
	struct h_recs rs = { 0 };

	h_read_all(t, 0, &rs);
	for (int i = 0; i < GX_THREADS; i++) {
		for (int k = 0; k < g[i].nok; k++) {
			char want[16];
			uint64_t o = g[i].off[k];
			ck_assert_uint_lt(o, rs.n);
			ck_assert_uint_eq(rs.r[o].off, o);
			snprintf(want, sizeof want, "X%d:%04d:", i,
				 g[i].seq[k]);
			ck_assert_msg(!strncmp(rs.r[o].val, want, strlen(want)),
				      "offset %llu holds %s, want %s",
				      (unsigned long long)o, rs.r[o].val, want);
		}
	}
	h_recs_free(&rs);
}

/* Groups that cross segment ends: offsets dense, every record where its
 * append said, many segments, the index finds each offset, verify clean. */
START_TEST(test_group_commit_rolls)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_ALWAYS);
	static struct gx_thread g[GX_THREADS];
	pthread_t th[GX_THREADS];
	static uint64_t bases[1024];
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;

	c.index_interval_bytes = 256;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	gx_start(g, th, t, 150, true);
	for (int i = 0; i < GX_THREADS; i++)
		ck_assert_msg(g[i].nerr == 0, "thread %d: %s", i, g[i].msg);
	ck_assert_uint_eq(h_info(t, 0).end_offset, GX_THREADS * 150);
	gx_check_acked(t, g);
	ck_assert_uint_gt(h_seg_list(dbdir(), "t", 0, bases, 1024), 20);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	for (uint64_t o = 0; o < GX_THREADS * 150; o += 37) {
		ck_assert_int_eq(mqlog_reader_seek(r, o), 0);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, o);
	}
	mqlog_reader_close(r);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A failing fdatasync under a group: every member of that group gets the
 * error with a message (none is acknowledged), the partition fail-stops,
 * and after reopen every acknowledged record is there. */
START_TEST(test_group_commit_sync_fault)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	static struct gx_thread g[GX_THREADS];
	pthread_t th[GX_THREADS];
	mqlog_topic *t;
	int acked = 0;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	io_fault_set(IO_OP_SYNC, 25, EIO, false);
	gx_start(g, th, t, 200, true);
	io_fault_clear();
	for (int i = 0; i < GX_THREADS; i++) {
		ck_assert_int_eq(g[i].nerr, 1);
		ck_assert_msg(g[i].err == -EIO || g[i].err == MQLOG_EFAILED,
			      "thread %d: %s", i, mqlog_errname(g[i].err));
		ck_assert_msg(strstr(g[i].msg, "topics/t/0"), "message: %s",
			      g[i].msg);
		acked += g[i].nok;
	}
	ck_assert_int_ge(acked, 24);
	ck_assert_int_eq(h_info(t, 0).failed, 1);
	mqlog_topic_close(t);
	mqlog_close(db);

	db = h_open(dbdir());
	t = h_topic(db, "t");
	ck_assert_uint_ge(h_info(t, 0).end_offset, (uint64_t)acked);
	gx_check_acked(t, g);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Limits apply to each member of a group as if it appended alone: under
 * REJECT exactly max-messages appends succeed and the rest get EFULL with
 * a message; under DROP_OLDEST all succeed and the newest N remain. */
START_TEST(test_group_commit_limits)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	static struct gx_thread g[GX_THREADS];
	pthread_t th[GX_THREADS];
	mqlog_topic *t;
	int ok = 0;

	c.max_messages = 300;
	c.full_policy = MQLOG_FULL_REJECT;
	h_create(db, "rej", &c);
	c.full_policy = MQLOG_FULL_DROP_OLDEST;
	h_create(db, "drop", &c);

	t = h_topic(db, "rej");
	gx_start(g, th, t, 60, false);
	for (int i = 0; i < GX_THREADS; i++) {
		ok += g[i].nok;
		if (g[i].nerr) {
			ck_assert_int_eq(g[i].err, MQLOG_EFULL);
			ck_assert_msg(strstr(g[i].msg, "max-messages"), "%s",
				      g[i].msg);
		}
	}
	ck_assert_int_eq(ok, 300);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 300);
	gx_check_acked(t, g);
	mqlog_topic_close(t);

	t = h_topic(db, "drop");
	gx_start(g, th, t, 60, false);
	for (int i = 0; i < GX_THREADS; i++)
		ck_assert_int_eq(g[i].nerr, 0);
	ck_assert_uint_eq(h_info(t, 0).end_offset, GX_THREADS * 60);
	ck_assert_uint_eq(h_info(t, 0).start_offset, GX_THREADS * 60 - 300);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct gx_releaser {
	mqlog_topic *t;
	uint64_t target; /* stop once the end reaches it */
	int rc;
};

/* Plays the consumer: releases what was appended, a little at a time. */
static void *gx_release(void *arg)
{
	struct gx_releaser *x = arg;
	double t0 = h_mono_ms();

	while (h_mono_ms() - t0 < 20000) {
		struct mqlog_partition_info info;
		x->rc = mqlog_partition_stat(x->t, 0, &info);
		if (x->rc || info.end_offset >= x->target)
			break;
		if (info.end_offset - info.start_offset >= 50)
			x->rc = mqlog_partition_release(x->t, 0,
							info.start_offset + 25);
		if (x->rc)
			break;
		h_sleep_ms(2);
	}
	return NULL;
}

/* Under BLOCK, members of a group that find the topic full wait for space
 * on their own and go on when a consumer releases some: every append
 * succeeds, in order per thread. */
START_TEST(test_group_commit_block)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	static struct gx_thread g[GX_THREADS];
	pthread_t th[GX_THREADS], rel;
	struct gx_releaser x = { 0 };
	mqlog_topic *t;

	c.max_messages = 60;
	c.full_policy = MQLOG_FULL_BLOCK;
	c.full_block_ms = 15000;
	h_create(db, "blk", &c);
	t = h_topic(db, "blk");
	x.t = t;
	x.target = GX_THREADS * 30;
	ck_assert_int_eq(pthread_create(&rel, NULL, gx_release, &x), 0);
	gx_start(g, th, t, 30, false);
	pthread_join(rel, NULL);
	ck_assert_int_eq(x.rc, 0);
	for (int i = 0; i < GX_THREADS; i++) {
		ck_assert_msg(g[i].nerr == 0, "thread %d: %s", i, g[i].msg);
		for (int k = 1; k < g[i].nok; k++)
			ck_assert_uint_gt(g[i].off[k], g[i].off[k - 1]);
	}
	ck_assert_uint_eq(h_info(t, 0).end_offset, GX_THREADS * 30);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static Suite *durability_suite(void)
{
	Suite *s = suite_create("durability");
	TCase *tc = tcase_create("durability");
	TCase *cc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_sync_always_durable);
	tcase_add_test(tc, test_sync_interval);
	tcase_add_test(tc, test_fail_stop);
	tcase_add_test(tc, test_fail_stop_on_topic_sync);
	tcase_add_test(tc, test_write_fault);
	tcase_add_test(tc, test_roll_fault);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(cc, fx_setup, fx_teardown);
	tcase_set_timeout(cc, 60);
	tcase_add_test(cc, test_group_commit);
	tcase_add_test(cc, test_group_commit_rolls);
	tcase_add_test(cc, test_group_commit_sync_fault);
	tcase_add_test(cc, test_group_commit_limits);
	tcase_add_test(cc, test_group_commit_block);
	suite_add_tcase(s, cc);
	return s;
}

H_MAIN(durability_suite)
