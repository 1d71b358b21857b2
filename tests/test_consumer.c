/*
 * test_consumer.c - consumers in one process: standalone polling and
 * seeking, blocking polls woken by appends, group members in threads
 * (sharing, rebalance callbacks, commit modes, fencing of stale members),
 * the assignment strategies, inspection and resets.
 *
 * Group tests use a short heartbeat (20-50 ms) so that leases, expiry and
 * rebalances happen within a test's first second.
 */
#include <pthread.h>

#include "helpers.h"

#include "group.h"

#define HB_MS	 30u
#define LEASE_MS 120u

static mqlog *g_db;
static mqlog_topic *g_t;

/* A fresh topic "t" of @parts partitions, opened as g_db / g_t. */
static void setup_topic(uint32_t parts)
{
	mqlog_topic_config c = h_cfg(parts, 1u << 20, MQLOG_SYNC_NONE);

	g_db = h_open(fx_dir);
	h_create(g_db, "t", &c);
	g_t = h_topic(g_db, "t");
}

static void teardown_topic(void)
{
	mqlog_topic_close(g_t);
	mqlog_close(g_db);
	g_t = NULL;
	g_db = NULL;
}

/* Append "k<key>:<seq>" keyed "k<key>" to partition @p. */
static void append_kv(mqlog_topic *t, uint32_t p, int key, int seq)
{
	char k[32], v[64];
	mqlog_msg m;

	snprintf(k, sizeof k, "k%d", key);
	snprintf(v, sizeof v, "k%d:%d", key, seq);
	memset(&m, 0, sizeof m);
	m.key.data = k;
	m.key.len = strlen(k);
	m.value.data = v;
	m.value.len = strlen(v);
	m.timestamp = MQLOG_TIMESTAMP_NOW;
	ck_assert_int_eq(mqlog_append(t, p, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 0);
}

/* @n records "v<i>" in partition @p, one batch each. */
static void append_n(mqlog_topic *t, uint32_t p, int n)
{
	char v[32];
	for (int i = 0; i < n; i++) {
		snprintf(v, sizeof v, "v%d", i);
		h_append1(t, p, v);
	}
}

static mqlog_consumer *open_consumer(mqlog_topic *t,
				     const mqlog_consumer_options *o)
{
	mqlog_consumer *c = NULL;
	int rc = mqlog_consumer_open(t, o, &c);

	ck_assert_msg(rc == 0, "mqlog_consumer_open = %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	return c;
}

/* Poll until nothing comes for @idle_ms; returns the records read. */
static size_t drain(mqlog_consumer *c, struct h_recs *out, int idle_ms)
{
	mqlog_record recs[64];
	size_t total = 0, n;

	for (;;) {
		int rc = mqlog_consumer_poll(c, recs, 64, idle_ms, &n);
		ck_assert_msg(rc == 0, "poll = %d %s: %s", rc,
			      mqlog_errname(rc), mqlog_errmsg(NULL));
		if (n == 0)
			return total;
		for (size_t i = 0; i < n; i++)
			if (out)
				h_recs_push(out, &recs[i]);
		total += n;
	}
}

static size_t assignment_of(mqlog_consumer *c, uint32_t *parts, size_t max)
{
	size_t n = 0;
	ck_assert_int_eq(mqlog_consumer_assignment(c, parts, max, &n), 0);
	return n;
}

/* ------------------------------------------------------------------------ */
/* Standalone                                                               */
/* ------------------------------------------------------------------------ */

/* A standalone consumer assigned every partition returns every record
 * once, each partition in offset order, then nothing without waiting. */
START_TEST(test_standalone_poll)
{
	uint32_t all[3] = { 0, 1, 2 };
	struct h_recs rs = { 0 };
	uint64_t next[3] = { 0 };
	mqlog_record rec;
	size_t n;
	double t0;

	setup_topic(3);
	append_n(g_t, 0, 100);
	append_n(g_t, 1, 50);
	append_n(g_t, 2, 7);
	mqlog_consumer *c = open_consumer(g_t, NULL);
	ck_assert_uint_eq(mqlog_consumer_member_id(c), 0);
	ck_assert_uint_eq(assignment_of(c, NULL, 0), 0);
	ck_assert_int_eq(mqlog_consumer_assign(c, all, 3), 0);
	ck_assert_uint_eq(drain(c, &rs, 0), 157);
	for (size_t i = 0; i < rs.n; i++) {
		uint32_t p = rs.r[i].partition;
		ck_assert_uint_eq(rs.r[i].off, next[p]);
		next[p]++;
	}
	ck_assert_uint_eq(next[0], 100);
	ck_assert_uint_eq(next[1], 50);
	ck_assert_uint_eq(next[2], 7);
	t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_consumer_poll(c, &rec, 1, 0, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(h_mono_ms() - t0 < 50);
	h_recs_free(&rs);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* Records of one poll stay valid together, across partitions, until the
 * next poll (zero copy: they point into the segments). */
START_TEST(test_poll_records_valid_until_next_poll)
{
	uint32_t all[2] = { 0, 1 };
	mqlog_record recs[16];
	size_t n;

	setup_topic(2);
	append_n(g_t, 0, 5);
	append_n(g_t, 1, 5);
	mqlog_consumer *c = open_consumer(g_t, NULL);
	ck_assert_int_eq(mqlog_consumer_assign(c, all, 2), 0);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 16, 0, &n), 0);
	ck_assert_uint_eq(n, 10);
	for (size_t i = 0; i < n; i++) {
		char want[16];
		snprintf(want, sizeof want, "v%" PRIu64, recs[i].offset);
		ck_assert_uint_eq(recs[i].value.len, strlen(want));
		ck_assert(memcmp(recs[i].value.data, want, strlen(want)) == 0);
	}
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* Seeks: earliest, latest, an offset, a timestamp; out-of-range offsets
 * and unassigned partitions are refused; re-assigning keeps positions. */
START_TEST(test_standalone_seek)
{
	uint32_t p0[1] = { 0 }, both[2] = { 0, 1 };
	mqlog_record rec;
	uint64_t pos;
	size_t n;
	int64_t mid;

	setup_topic(2);
	for (int i = 0; i < 10; i++) {
		mqlog_msg m = h_msg("x", 1000 + i * 10);
		ck_assert_int_eq(mqlog_append(g_t, 0, &m, 1, MQLOG_SYNC_DEFAULT,
					      NULL),
				 0);
	}
	mqlog_consumer *c = open_consumer(g_t, NULL);
	ck_assert_int_eq(mqlog_consumer_assign(c, p0, 1), 0);
	ck_assert_int_eq(mqlog_consumer_seek(c, 0, 4), 0);
	ck_assert_int_eq(mqlog_consumer_poll(c, &rec, 1, 0, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(rec.offset, 4);
	ck_assert_int_eq(mqlog_consumer_seek(c, 0, MQLOG_OFFSET_LATEST), 0);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &pos), 0);
	ck_assert_uint_eq(pos, 10);
	mid = 1000 + 65;
	ck_assert_int_eq(mqlog_consumer_seek_time(c, 0, mid), 0);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &pos), 0);
	ck_assert_uint_eq(pos, 7);
	ck_assert_int_eq(mqlog_consumer_seek(c, 0, 11), MQLOG_ERANGE);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &pos), 0);
	ck_assert_uint_eq(pos, 7);
	ck_assert_int_eq(mqlog_consumer_seek(c, 1, 0), MQLOG_EINVAL);
	H_ASSERT_MSG(NULL);
	ck_assert_int_eq(mqlog_consumer_assign(c, both, 2), 0);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &pos), 0);
	ck_assert_uint_eq(pos, 7);
	ck_assert_uint_eq(assignment_of(c, NULL, 0), 2);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* A poll with a timeout returns empty after about that long. */
START_TEST(test_poll_timeout)
{
	uint32_t p0[1] = { 0 };
	mqlog_record rec;
	size_t n = 99;
	double t0, dt;

	setup_topic(1);
	mqlog_consumer *c = open_consumer(g_t, NULL);
	ck_assert_int_eq(mqlog_consumer_assign(c, p0, 1), 0);
	t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_consumer_poll(c, &rec, 1, 60, &n), 0);
	dt = h_mono_ms() - t0;
	ck_assert_uint_eq(n, 0);
	ck_assert_msg(dt >= 55 && dt < 1000, "waited %.1f ms", dt);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

struct appender {
	mqlog_topic *t;	   /* where */
	uint32_t part;	   /* which partition */
	unsigned delay_ms; /* before appending */
	double at_ms;	   /* when the append was made */
};

static void *append_later(void *arg)
{
	struct appender *a = arg;
	h_sleep_ms(a->delay_ms);
	a->at_ms = h_mono_ms();
	h_append1(a->t, a->part, "late");
	return NULL;
}

/* A blocked poll over several partitions wakes within milliseconds of an
 * append to any of them from another thread. */
START_TEST(test_poll_wakes_on_append)
{
	uint32_t all[4] = { 0, 1, 2, 3 };
	mqlog_record rec;
	size_t n;

	setup_topic(4);
	mqlog_consumer *c = open_consumer(g_t, NULL);
	ck_assert_int_eq(mqlog_consumer_assign(c, all, 4), 0);
	for (uint32_t p = 0; p < 4; p++) {
		struct appender a = { g_t, 3 - p, 50, 0 };
		pthread_t th;
		double woke;

		ck_assert_int_eq(pthread_create(&th, NULL, append_later, &a),
				 0);
		ck_assert_int_eq(mqlog_consumer_poll(c, &rec, 1, 5000, &n), 0);
		woke = h_mono_ms();
		pthread_join(th, NULL);
		ck_assert_uint_eq(n, 1);
		ck_assert_uint_eq(rec.partition, 3 - p);
		ck_assert_msg(woke - a.at_ms < 50, "woke %.2f ms after append",
			      woke - a.at_ms);
	}
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* Bad options and misuse are refused with a message, and change nothing. */
START_TEST(test_invalid_arguments)
{
	mqlog_consumer_options o;
	mqlog_consumer *c = NULL;
	mqlog_record rec;
	size_t n;

	setup_topic(2);
	mqlog_consumer_options_init(&o);
	o.group = "bad/name";
	ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "group name"));
	o.group = "..";
	ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c), MQLOG_EINVAL);
	o.group = "g";
	o.heartbeat_ms = 100;
	o.lease_ms = 150;
	ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "lease_ms"));
	mqlog_consumer_options_init(&o);
	o.strategy = 7;
	ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c), MQLOG_EINVAL);
	mqlog_consumer_options_init(&o);
	o.reset_offset = 3;
	ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c), MQLOG_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(mqlog_group_name_valid("orders.workers-1"), 1);
	ck_assert_int_eq(mqlog_group_name_valid(""), 0);

	c = open_consumer(g_t, NULL);
	uint32_t bad[1] = { 2 };
	ck_assert_int_eq(mqlog_consumer_assign(c, bad, 1), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_commit(c), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_poll(c, &rec, 0, 0, &n), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_heartbeat(c), 0);
	mqlog_consumer_close(c);

	o = h_group_opts("g", HB_MS, LEASE_MS);
	c = open_consumer(g_t, &o);
	uint32_t p0[1] = { 0 };
	ck_assert_int_eq(mqlog_consumer_assign(c, p0, 1), MQLOG_EINVAL);
	mqlog_consumer_close(c);
	mqlog_consumer_close(NULL);
	teardown_topic();

	/* A group member needs a writable directory. */
	mqlog_options opts;
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	mqlog_options_init(&opts);
	opts.flags = MQLOG_OPEN_RDONLY;
	ck_assert_int_eq(mqlog_open(fx_dir, &opts, &db), 0);
	ck_assert_int_eq(mqlog_topic_open(db, "t", &t), 0);
	o = h_group_opts("g", HB_MS, LEASE_MS);
	ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), MQLOG_ERDONLY);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Groups                                                                   */
/* ------------------------------------------------------------------------ */

/* A lone member owns every partition, reads everything, and its offsets
 * are committed at close; the group's next member resumes from there and
 * another group still sees everything. */
START_TEST(test_group_single_member)
{
	mqlog_consumer_options o = h_group_opts("g1", HB_MS, LEASE_MS);
	uint32_t parts[4];
	uint64_t off;

	setup_topic(4);
	for (uint32_t p = 0; p < 4; p++)
		append_n(g_t, p, 25);
	mqlog_consumer *c = open_consumer(g_t, &o);
	ck_assert_uint_ne(mqlog_consumer_member_id(c), 0);
	ck_assert_uint_eq(assignment_of(c, parts, 4), 4);
	ck_assert_uint_eq(drain(c, NULL, 0), 100);
	mqlog_consumer_close(c);

	c = open_consumer(g_t, &o);
	ck_assert_uint_eq(drain(c, NULL, 0), 0);
	for (uint32_t p = 0; p < 4; p++) {
		ck_assert_int_eq(mqlog_consumer_committed(c, p, &off), 0);
		ck_assert_uint_eq(off, 25);
	}
	append_n(g_t, 2, 3);
	ck_assert_uint_eq(drain(c, NULL, 0), 3);
	mqlog_consumer_close(c);

	o = h_group_opts("g2", HB_MS, LEASE_MS);
	c = open_consumer(g_t, &o);
	ck_assert_uint_eq(drain(c, NULL, 0), 103);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* AFTER commits a poll's records at the next poll; BEFORE commits them
 * before returning them; MANUAL only when asked, with explicit offsets
 * clamped into the partition. */
START_TEST(test_commit_modes)
{
	mqlog_consumer_options o;
	mqlog_record recs[4];
	mqlog_partition_offset po;
	uint64_t off;
	size_t n;

	setup_topic(1);
	append_n(g_t, 0, 10);

	o = h_group_opts("after", HB_MS, LEASE_MS);
	mqlog_consumer *c = open_consumer(g_t, &o);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 4, 0, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 4, 0, &n), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 4);
	mqlog_consumer_close(c);
	c = open_consumer(g_t, &o);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 8);
	mqlog_consumer_close(c);

	o = h_group_opts("before", HB_MS, LEASE_MS);
	o.commit_mode = MQLOG_COMMIT_BEFORE;
	c = open_consumer(g_t, &o);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 4, 0, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 4);
	mqlog_consumer_close(c);

	o = h_group_opts("manual", HB_MS, LEASE_MS);
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	c = open_consumer(g_t, &o);
	ck_assert_uint_eq(drain(c, NULL, 0), 10);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), MQLOG_ENOENT);
	po.partition = 0;
	po.offset = 3;
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, &po, 1), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 3);
	po.offset = 1000;
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, &po, 1), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 10);
	po.partition = 5;
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, &po, 1),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_seek(c, 0, 6), 0);
	ck_assert_int_eq(mqlog_consumer_commit(c), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 6);
	mqlog_consumer_close(c);
	c = open_consumer(g_t, &o);
	ck_assert_uint_eq(drain(c, NULL, 0), 4);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* Rebalance events recorded by a callback. */
struct events {
	int assigned, revoked, lost; /* partitions reported */
	int calls;		     /* callbacks */
	int commit_rc;		     /* commit from REVOKED */
	int do_commit;		     /* commit in REVOKED */
};

static void on_rebalance(void *arg, mqlog_consumer *c, int ev,
			 const uint32_t *parts, size_t n)
{
	struct events *e = arg;
	mqlog_record rec;
	size_t got;

	(void)parts;
	e->calls++;
	if (ev == MQLOG_REBALANCE_ASSIGNED)
		e->assigned += (int)n;
	else if (ev == MQLOG_REBALANCE_REVOKED) {
		e->revoked += (int)n;
		if (e->do_commit)
			e->commit_rc = mqlog_consumer_commit(c);
	} else if (ev == MQLOG_REBALANCE_LOST)
		e->lost += (int)n;
	/* poll is refused inside a callback */
	ck_assert_int_eq(mqlog_consumer_poll(c, &rec, 1, 0, &got), MQLOG_EBUSY);
}

/* Poll both members until their assignments have @a and @b partitions. */
static void settle2(mqlog_consumer *a, mqlog_consumer *b, size_t na, size_t nb,
		    struct h_recs *ra, struct h_recs *rb)
{
	double deadline = h_mono_ms() + 5000;
	mqlog_record recs[32];
	size_t n;

	for (;;) {
		ck_assert_int_eq(mqlog_consumer_poll(a, recs, 32, 5, &n), 0);
		for (size_t i = 0; i < n && ra; i++)
			h_recs_push(ra, &recs[i]);
		ck_assert_int_eq(mqlog_consumer_poll(b, recs, 32, 5, &n), 0);
		for (size_t i = 0; i < n && rb; i++)
			h_recs_push(rb, &recs[i]);
		if (assignment_of(a, NULL, 0) == na &&
		    assignment_of(b, NULL, 0) == nb)
			return;
		ck_assert_msg(h_mono_ms() < deadline,
			      "assignments %zu/%zu, want %zu/%zu",
			      assignment_of(a, NULL, 0),
			      assignment_of(b, NULL, 0), na, nb);
	}
}

/* A second member joining takes half of the partitions cooperatively: the
 * first reports them REVOKED (and commits there, in manual mode), the
 * second ASSIGNED; when one closes the other gets all back.  Nothing is
 * read twice and nothing skipped. */
START_TEST(test_rebalance_callbacks)
{
	struct events ea = { .do_commit = 1 }, eb = { .do_commit = 1 };
	mqlog_consumer_options o = h_group_opts("cb", HB_MS, LEASE_MS);
	struct h_recs ra = { 0 }, rb = { 0 };
	uint64_t seen[6][40];
	mqlog_record recs[8];
	size_t n;

	setup_topic(6);
	for (uint32_t p = 0; p < 6; p++)
		append_n(g_t, p, 20);
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	o.on_rebalance = on_rebalance;
	o.rebalance_arg = &ea;
	mqlog_consumer *a = open_consumer(g_t, &o);
	/* Some records first: a's partitions are mid-way when b joins. */
	ck_assert_int_eq(mqlog_consumer_poll(a, recs, 8, 0, &n), 0);
	ck_assert_int_eq(ea.assigned, 6);
	for (size_t i = 0; i < n; i++)
		h_recs_push(&ra, &recs[i]);
	o.rebalance_arg = &eb;
	mqlog_consumer *b = open_consumer(g_t, &o);
	settle2(a, b, 3, 3, &ra, &rb);
	ck_assert_int_eq(ea.revoked, 3);
	ck_assert_int_eq(ea.commit_rc, 0);
	ck_assert_int_eq(eb.assigned, 3);
	/* Append more while both run, then b leaves. */
	for (uint32_t p = 0; p < 6; p++)
		append_n(g_t, p, 20);
	for (int k = 0; k < 5; k++) {
		ck_assert_int_eq(mqlog_consumer_poll(a, recs, 8, 0, &n), 0);
		for (size_t i = 0; i < n; i++)
			h_recs_push(&ra, &recs[i]);
		ck_assert_int_eq(mqlog_consumer_poll(b, recs, 8, 0, &n), 0);
		for (size_t i = 0; i < n; i++)
			h_recs_push(&rb, &recs[i]);
	}
	mqlog_consumer_close(b);
	ck_assert_int_eq(eb.revoked, 3);
	drain(a, &ra, 20);
	ck_assert_uint_eq(ra.n + rb.n, 240);
	ck_assert_uint_eq(assignment_of(a, NULL, 0), 6);
	ck_assert_int_eq(ea.lost + eb.lost, 0);
	/* Every record exactly once, in order per partition. */
	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < ra.n; i++)
		seen[ra.r[i].partition][ra.r[i].off]++;
	for (size_t i = 0; i < rb.n; i++)
		seen[rb.r[i].partition][rb.r[i].off]++;
	for (uint32_t p = 0; p < 6; p++)
		for (int off = 0; off < 40; off++)
			ck_assert_msg(seen[p][off] == 1,
				      "partition %u offset %d seen %" PRIu64
				      " times",
				      p, off, seen[p][off]);
	h_recs_free(&ra);
	h_recs_free(&rb);
	mqlog_consumer_close(a);
	teardown_topic();
}
END_TEST

/*
 * A member that stops polling past its lease is removed by the others and
 * its partitions reassigned; its commit is then refused with MQLOG_ESTALE
 * and a message naming the group, the topic and the generations; its next
 * poll reports the partitions LOST and rejoins under a new member id.
 */
START_TEST(test_stale_generation_commit)
{
	struct events ea = { 0 };
	mqlog_consumer_options o = h_group_opts("stale", HB_MS, LEASE_MS);
	mqlog_record recs[8];
	uint64_t old_id;
	size_t n;
	int rc;

	setup_topic(2);
	append_n(g_t, 0, 10);
	append_n(g_t, 1, 10);
	o.on_rebalance = on_rebalance;
	o.rebalance_arg = &ea;
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	mqlog_consumer *a = open_consumer(g_t, &o);
	ck_assert_int_eq(mqlog_consumer_poll(a, recs, 8, 0, &n), 0);
	ck_assert_uint_gt(n, 0);
	old_id = mqlog_consumer_member_id(a);
	o.on_rebalance = NULL;
	mqlog_consumer *b = open_consumer(g_t, &o);
	/* a sleeps past its lease; b's heartbeats remove it. */
	double deadline = h_mono_ms() + 3000;
	while (assignment_of(b, NULL, 0) < 2) {
		ck_assert_int_eq(mqlog_consumer_poll(b, recs, 8, 10, &n), 0);
		ck_assert(h_mono_ms() < deadline);
	}
	rc = mqlog_consumer_commit(a);
	ck_assert_int_eq(rc, MQLOG_ESTALE);
	ck_assert_msg(h_contains(mqlog_errmsg(NULL), "group 'stale'") &&
			      h_contains(mqlog_errmsg(NULL), "topic 't'") &&
			      h_contains(mqlog_errmsg(NULL), "generation"),
		      "message: %s", mqlog_errmsg(NULL));
	ck_assert_int_eq(mqlog_consumer_heartbeat(a), MQLOG_ESTALE);
	/* Its next poll finds it removed: LOST, then a new member. */
	ck_assert_int_eq(mqlog_consumer_poll(a, recs, 8, 0, &n), 0);
	ck_assert_int_eq(ea.lost, 2);
	ck_assert_uint_ne(mqlog_consumer_member_id(a), old_id);
	settle2(a, b, 1, 1, NULL, NULL);
	mqlog_consumer_close(a);
	mqlog_consumer_close(b);
	teardown_topic();
}
END_TEST

/* A committed offset beyond the log end (the tail was lost and truncated
 * by recovery) is clamped: the next owner starts at the end. */
START_TEST(test_committed_clamped_after_recovery)
{
	mqlog_consumer_options o = h_group_opts("clamp", HB_MS, LEASE_MS);
	mqlog_record rec;
	uint64_t size, off;
	size_t n;

	setup_topic(1);
	append_n(g_t, 0, 10);
	mqlog_consumer *c = open_consumer(g_t, &o);
	ck_assert_uint_eq(drain(c, NULL, 0), 10);
	mqlog_consumer_close(c);
	teardown_topic();
	/* Tear the last batch: recovery cuts offset 9. */
	const char *seg = h_seg_path(fx_dir, "t", 0, 0);
	ck_assert_int_eq(fx_file_size(seg, &size), 0);
	ck_assert_int_eq(fx_truncate(seg, size - 3), 0);
	g_db = h_open(fx_dir);
	g_t = h_topic(g_db, "t");
	ck_assert_uint_eq(h_info(g_t, 0).end_offset, 9);
	c = open_consumer(g_t, &o);
	/* Recovery set the commit back to the end, durably. */
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 9);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &off), 0);
	ck_assert_uint_eq(off, 9);
	h_append1(g_t, 0, "new");
	ck_assert_int_eq(mqlog_consumer_poll(c, &rec, 1, 1000, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(rec.offset, 9);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Assignment strategies                                                    */
/* ------------------------------------------------------------------------ */

static void snap_make(struct group_snap *s, uint32_t parts, size_t members,
		      uint32_t strategy)
{
	memset(s, 0, sizeof *s);
	s->nparts = parts;
	s->strategy = strategy;
	s->target = calloc(parts, sizeof *s->target);
	s->parts = calloc(parts, sizeof *s->parts);
	s->cap = members + 8;
	s->members = calloc(s->cap, sizeof *s->members);
	for (size_t i = 0; i < members; i++) {
		s->members[i].id = 100 + i;
		s->members[i].joined = i + 1;
	}
	s->nmembers = members;
}

static size_t count_of(const struct group_snap *s, uint64_t id)
{
	size_t n = 0;
	for (uint32_t p = 0; p < s->nparts; p++)
		n += s->target[p] == id;
	return n;
}

/* Range gives contiguous ranges (the first members one more), round-robin
 * deals partitions in turn; both depend only on members and partitions. */
START_TEST(test_assign_range_round_robin)
{
	struct group_snap s;
	static const uint64_t range8x3[8] = { 100, 100, 100, 101,
					      101, 101, 102, 102 };

	snap_make(&s, 8, 3, MQLOG_ASSIGN_RANGE);
	/* Member order is by join generation, not by array order. */
	struct group_member tmp = s.members[0];
	s.members[0] = s.members[2];
	s.members[2] = tmp;
	ck_assert_int_eq(group_assign(&s), 0);
	for (int p = 0; p < 8; p++)
		ck_assert_uint_eq(s.target[p], range8x3[p]);
	s.strategy = MQLOG_ASSIGN_ROUND_ROBIN;
	ck_assert_int_eq(group_assign(&s), 0);
	for (int p = 0; p < 8; p++)
		ck_assert_uint_eq(s.target[p], 100 + (uint64_t)(p % 3));
	s.nmembers = 0;
	ck_assert_int_eq(group_assign(&s), 0);
	for (int p = 0; p < 8; p++)
		ck_assert_uint_eq(s.target[p], 0);
	group_snap_free(&s);
}
END_TEST

/* Sticky keeps balance within one partition and moves as few partitions
 * as possible when a member joins or leaves. */
START_TEST(test_assign_sticky)
{
	struct group_snap s;
	uint64_t before[12];
	size_t moved;

	snap_make(&s, 12, 2, MQLOG_ASSIGN_STICKY);
	ck_assert_int_eq(group_assign(&s), 0);
	ck_assert_uint_eq(count_of(&s, 100), 6);
	ck_assert_uint_eq(count_of(&s, 101), 6);
	/* A third member joins: only 4 partitions move, all to it. */
	memcpy(before, s.target, sizeof before);
	s.members[2] = (struct group_member){ .id = 102, .joined = 3 };
	s.nmembers = 3;
	ck_assert_int_eq(group_assign(&s), 0);
	moved = 0;
	for (int p = 0; p < 12; p++) {
		if (s.target[p] != before[p]) {
			moved++;
			ck_assert_uint_eq(s.target[p], 102);
		}
	}
	ck_assert_uint_eq(moved, 4);
	for (uint64_t id = 100; id <= 102; id++)
		ck_assert_uint_eq(count_of(&s, id), 4);
	/* The first leaves: only its 4 move, 2 to each of the others. */
	memcpy(before, s.target, sizeof before);
	s.members[0] = s.members[2];
	s.nmembers = 2;
	ck_assert_int_eq(group_assign(&s), 0);
	moved = 0;
	for (int p = 0; p < 12; p++) {
		if (before[p] != 100)
			ck_assert_uint_eq(s.target[p], before[p]);
		else
			moved++;
	}
	ck_assert_uint_eq(moved, 4);
	ck_assert_uint_eq(count_of(&s, 101), 6);
	ck_assert_uint_eq(count_of(&s, 102), 6);
	/* Uneven: 7 partitions over 3 members is 3/2/2. */
	group_snap_free(&s);
	snap_make(&s, 7, 3, MQLOG_ASSIGN_STICKY);
	ck_assert_int_eq(group_assign(&s), 0);
	ck_assert_uint_eq(
		count_of(&s, 100) + count_of(&s, 101) + count_of(&s, 102), 7);
	for (uint64_t id = 100; id <= 102; id++)
		ck_assert(count_of(&s, id) >= 2 && count_of(&s, id) <= 3);
	group_snap_free(&s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

#define TH_KEYS	       32
#define TH_MAX_MEMBERS 4

struct shared {
	pthread_mutex_t mu; /* guards the counters */
	size_t consumed;    /* records consumed by all members */
	size_t total;	    /* records that will be produced */
	int producer_done;  /* the producer finished */
	mqlog_topic *t;	    /* topic */
	int strategy;	    /* group strategy */
};

struct member {
	struct shared *sh;  /* shared state */
	int id;		    /* index */
	size_t leave_after; /* close after this many records (0: never) */
	int *key_seq;	    /* [TH_KEYS] last seq seen per key */
	struct h_recs got;  /* what it consumed (copies) */
	int order_errors;   /* per-key order violations */
};

static void *member_main(void *arg)
{
	struct member *m = arg;
	struct shared *sh = m->sh;
	mqlog_consumer_options o = h_group_opts("threads", HB_MS, LEASE_MS);
	mqlog_record recs[64];
	double deadline = h_mono_ms() + 30000;
	mqlog_consumer *c = NULL;
	size_t mine = 0, n;

	o.strategy = sh->strategy;
	if (mqlog_consumer_open(sh->t, &o, &c) != 0)
		return (void *)1;
	for (int k = 0; k < TH_KEYS; k++)
		m->key_seq[k] = -1;
	while (h_mono_ms() < deadline) {
		int done;

		if (mqlog_consumer_poll(c, recs, 64, 20, &n) != 0) {
			mqlog_consumer_close(c);
			return (void *)2;
		}
		for (size_t i = 0; i < n; i++) {
			int key, seq;
			h_recs_push(&m->got, &recs[i]);
			if (sscanf((const char *)m->got.r[m->got.n - 1].val,
				   "k%d:%d", &key, &seq) != 2 ||
			    key < 0 || key >= TH_KEYS || seq <= m->key_seq[key])
				m->order_errors++;
			else
				m->key_seq[key] = seq;
		}
		mine += n;
		pthread_mutex_lock(&sh->mu);
		sh->consumed += n;
		done = sh->producer_done && sh->consumed >= sh->total;
		pthread_mutex_unlock(&sh->mu);
		if (done || (m->leave_after && mine >= m->leave_after))
			break;
	}
	mqlog_consumer_close(c);
	return NULL;
}

/*
 * @members threads consume one group over 8 partitions while a producer
 * appends keyed records; the first @leavers members close part-way.  The
 * union of what they read is every record exactly once (no crash, so no
 * duplicates), and each member sees each key's records in order.
 */
static void run_threads(int members, int leavers, int strategy)
{
	enum {
		PER_KEY = 150
	};
	struct shared sh;
	struct member ms[TH_MAX_MEMBERS];
	pthread_t th[TH_MAX_MEMBERS];
	int key_seqs[TH_MAX_MEMBERS][TH_KEYS];
	static uint8_t seen[TH_KEYS][PER_KEY];

	setup_topic(8);
	memset(&sh, 0, sizeof sh);
	pthread_mutex_init(&sh.mu, NULL);
	sh.t = g_t;
	sh.total = (size_t)TH_KEYS * PER_KEY;
	sh.strategy = strategy;
	memset(ms, 0, sizeof ms);
	for (int i = 0; i < members; i++) {
		ms[i].sh = &sh;
		ms[i].id = i;
		ms[i].key_seq = key_seqs[i];
		ms[i].leave_after = i < leavers ? sh.total / 8 : 0;
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, member_main, &ms[i]), 0);
		h_sleep_ms(5);
	}
	for (int seq = 0; seq < PER_KEY; seq++) {
		for (int k = 0; k < TH_KEYS; k++) {
			char key[16];
			snprintf(key, sizeof key, "k%d", k);
			append_kv(g_t,
				  mqlog_partition_for_key(key, strlen(key), 8),
				  k, seq);
		}
		if (seq % 30 == 0)
			h_sleep_ms(2);
	}
	pthread_mutex_lock(&sh.mu);
	sh.producer_done = 1;
	pthread_mutex_unlock(&sh.mu);
	for (int i = 0; i < members; i++) {
		void *ret = NULL;
		pthread_join(th[i], &ret);
		ck_assert_msg(ret == NULL, "member %d failed: %p", i, ret);
	}
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < members; i++) {
		ck_assert_msg(ms[i].order_errors == 0,
			      "member %d saw %d keys out of order", i,
			      ms[i].order_errors);
		for (size_t r = 0; r < ms[i].got.n; r++) {
			int key, seq;
			ck_assert(sscanf(ms[i].got.r[r].val, "k%d:%d", &key,
					 &seq) == 2);
			seen[key][seq]++;
		}
		h_recs_free(&ms[i].got);
	}
	for (int k = 0; k < TH_KEYS; k++)
		for (int s = 0; s < PER_KEY; s++)
			ck_assert_msg(seen[k][s] == 1,
				      "k%d:%d consumed %d times", k, s,
				      seen[k][s]);
	pthread_mutex_destroy(&sh.mu);
	teardown_topic();
}

/* Four members in threads, range strategy: each record once, keys in
 * order. */
START_TEST(test_threads_share_range)
{
	run_threads(4, 0, MQLOG_ASSIGN_RANGE);
}
END_TEST

/* Three members, sticky, one of which leaves part-way: its partitions
 * move to the others from its commit, still each record once. */
START_TEST(test_threads_leave_sticky)
{
	run_threads(3, 1, MQLOG_ASSIGN_STICKY);
}
END_TEST

/* Three members, round-robin, two leave part-way. */
START_TEST(test_threads_leave_round_robin)
{
	run_threads(3, 2, MQLOG_ASSIGN_ROUND_ROBIN);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Inspection and reset                                                     */
/* ------------------------------------------------------------------------ */

/* The group list shows members, committed offsets, owners and lag; a
 * reset is refused while a member is live, and a forced one removes it
 * (it reports LOST and resumes from the new offsets). */
START_TEST(test_group_list_and_reset)
{
	struct events ev = { 0 };
	mqlog_consumer_options o = h_group_opts("obs", HB_MS, LEASE_MS);
	mqlog_group_info *gs = NULL, *g = NULL;
	mqlog_record recs[8];
	size_t n = 0;
	uint64_t off;

	setup_topic(2);
	append_n(g_t, 0, 10);
	append_n(g_t, 1, 4);
	o.on_rebalance = on_rebalance;
	o.rebalance_arg = &ev;
	mqlog_consumer *c = open_consumer(g_t, &o);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 0, &n), 0);
	ck_assert_int_eq(mqlog_consumer_commit(c), 0);

	ck_assert_int_eq(mqlog_group_list(g_db, &gs, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(gs[0].group, "obs");
	ck_assert_str_eq(gs[0].topic, "t");
	ck_assert_uint_eq(gs[0].member_count, 1);
	ck_assert_uint_eq(gs[0].live_members, 1);
	ck_assert_int_eq(gs[0].members[0].pid, getpid());
	ck_assert_int_eq(gs[0].members[0].alive, 1);
	ck_assert_uint_eq(gs[0].members[0].owned, 2);
	ck_assert_uint_eq(gs[0].partition_count, 2);
	ck_assert_uint_eq(gs[0].lag, 14 - 8);
	for (int p = 0; p < 2; p++) {
		ck_assert_uint_eq(gs[0].partitions[p].owner,
				  mqlog_consumer_member_id(c));
		ck_assert_uint_eq(gs[0].partitions[p].end_offset,
				  p == 0 ? 10 : 4);
	}
	mqlog_group_info_free(gs, n);

	ck_assert_int_eq(mqlog_group_reset_offsets(g_db, "obs", "t",
						   MQLOG_OFFSET_EARLIEST, 0),
			 MQLOG_EBUSY);
	ck_assert(h_contains(mqlog_errmsg(NULL), "live member"));
	ck_assert_int_eq(mqlog_group_reset_offsets(g_db, "obs", "t", 2,
						   MQLOG_RESET_FORCE),
			 0);
	ck_assert_int_eq(mqlog_group_describe(g_db, "obs", "t", &g), 0);
	ck_assert_uint_eq(g->member_count, 0);
	ck_assert_uint_eq(g->partitions[0].committed, 2);
	ck_assert_uint_eq(g->partitions[1].committed, 2);
	mqlog_group_info_free(g, 1);
	/* The removed member: LOST, rejoin, resume at offset 2. */
	struct h_recs rs = { 0 };
	drain(c, &rs, 20);
	ck_assert_int_eq(ev.lost, 2);
	ck_assert_uint_eq(rs.n, 8 + 2);
	mqlog_consumer_close(c);
	h_recs_free(&rs);

	/* No live member: latest, then by time. */
	ck_assert_int_eq(mqlog_group_reset_offsets(g_db, "obs", "t",
						   MQLOG_OFFSET_LATEST, 0),
			 0);
	o.on_rebalance = NULL;
	c = open_consumer(g_t, &o);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 10);
	mqlog_consumer_close(c);
	ck_assert_int_eq(mqlog_group_reset_offsets_time(g_db, "obs", "t",
							INT64_MAX, 0),
			 0);
	ck_assert_int_eq(mqlog_group_describe(g_db, "obs", "t", &g), 0);
	ck_assert_uint_eq(g->partitions[1].committed, 4);
	mqlog_group_info_free(g, 1);
	ck_assert_int_eq(mqlog_group_describe(g_db, "nope", "t", &g),
			 MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_group_describe(g_db, "obs", "nope", &g),
			 MQLOG_ENOENT);
	teardown_topic();
}
END_TEST

/* Deleting a topic removes its groups' records. */
START_TEST(test_topic_delete_drops_groups)
{
	mqlog_consumer_options o = h_group_opts("gone", HB_MS, LEASE_MS);
	mqlog_group_info *gs = NULL;
	size_t n = 0;

	setup_topic(1);
	append_n(g_t, 0, 3);
	mqlog_consumer *c = open_consumer(g_t, &o);
	ck_assert_uint_eq(drain(c, NULL, 0), 3);
	mqlog_consumer_close(c);
	mqlog_topic_close(g_t);
	g_t = NULL;
	ck_assert_int_eq(mqlog_topic_delete(g_db, "t"), 0);
	ck_assert_int_eq(mqlog_group_list(g_db, &gs, &n), 0);
	ck_assert_uint_eq(n, 0);
	mqlog_group_info_free(gs, n);
	mqlog_close(g_db);
	g_db = NULL;
}
END_TEST

static Suite *consumer_suite(void)
{
	Suite *s = suite_create("consumer");
	TCase *tc = tcase_create("standalone");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_standalone_poll);
	tcase_add_test(tc, test_poll_records_valid_until_next_poll);
	tcase_add_test(tc, test_standalone_seek);
	tcase_add_test(tc, test_poll_timeout);
	tcase_add_test(tc, test_poll_wakes_on_append);
	tcase_add_test(tc, test_invalid_arguments);
	suite_add_tcase(s, tc);

	tc = tcase_create("group");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_group_single_member);
	tcase_add_test(tc, test_commit_modes);
	tcase_add_test(tc, test_rebalance_callbacks);
	tcase_add_test(tc, test_stale_generation_commit);
	tcase_add_test(tc, test_committed_clamped_after_recovery);
	tcase_add_test(tc, test_group_list_and_reset);
	tcase_add_test(tc, test_topic_delete_drops_groups);
	suite_add_tcase(s, tc);

	tc = tcase_create("assign");
	tcase_add_test(tc, test_assign_range_round_robin);
	tcase_add_test(tc, test_assign_sticky);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_threads_share_range);
	tcase_add_test(tc, test_threads_leave_sticky);
	tcase_add_test(tc, test_threads_leave_round_robin);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(consumer_suite)
