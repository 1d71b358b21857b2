/*
 * test_dlq.c - retries, dead letters, delayed delivery and expiry: the
 * topic settings, nack to <topic>.retry and <topic>.dlq with their
 * headers, records behind a poison record flowing on, delays honoured,
 * scheduled records, expired records skipped and counted, groups kept
 * apart, bad arguments, kill -9 at each step of a nack and of a replay,
 * and the replay of a dead-letter topic.
 */
#include <signal.h>
#include <sys/wait.h>

#include "dlq_topic.h"

#include "engine.h"

/* The value of header @name of @rec as a C string in @buf ("" if none). */
static const char *hdr(const mqlog_record *rec, const char *name, char *buf,
		       size_t size)
{
	mqlog_bytes v = { NULL, 0 };

	buf[0] = '\0';
	if (mqlog_record_header(rec, name, strlen(name), &v) == 1 && v.data) {
		size_t n = v.len < size - 1 ? v.len : size - 1;
		memcpy(buf, v.data, n);
		buf[n] = '\0';
	}
	return buf;
}

static int64_t hdr_i64(const mqlog_record *rec, const char *name)
{
	char b[32];

	hdr(rec, name, b, sizeof b);
	return b[0] ? strtoll(b, NULL, 10) : -1;
}

/* Does the value of @rec equal the C string @s? */
static int val_is(const mqlog_record *rec, const char *s)
{
	return rec->value.data && rec->value.len == strlen(s) &&
	       memcmp(rec->value.data, s, rec->value.len) == 0;
}

/* Append "v0".."v<n-1>" to partition @p, one batch each. */
static void append_n(mqlog_topic *t, uint32_t p, int n)
{
	char v[32];

	for (int i = 0; i < n; i++) {
		snprintf(v, sizeof v, "v%d", i);
		h_append1(t, p, v);
	}
}

/* Every record of @topic's partition @p (a missing topic: none). */
static void read_topic(mqlog *db, const char *topic, uint32_t p,
		       struct h_recs *out)
{
	mqlog_topic *t = NULL;

	if (mqlog_topic_open(db, topic, &t) == MQLOG_ENOENT)
		return;
	ck_assert_ptr_nonnull(t);
	h_read_all(t, p, out);
	mqlog_topic_close(t);
}

/* How many records of @topic/@p have value @val. */
static size_t count_val(mqlog *db, const char *topic, uint32_t p,
			const char *val)
{
	struct h_recs rs = { 0 };
	size_t n = 0;

	read_topic(db, topic, p, &rs);
	for (size_t i = 0; i < rs.n; i++)
		if (rs.r[i].val && !strcmp(rs.r[i].val, val))
			n++;
	h_recs_free(&rs);
	return n;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_config_roundtrip)
{
	/* max_attempts and retry_delay_ms are kept across a reopen, and
	 * values out of range are refused with nothing created. */
	mqlog_topic_config c = h_cfg(2, 1u << 20, MQLOG_SYNC_NONE), got;
	mqlog_topic *t;
	mqlog *db = h_open(fx_dir);

	mqlog_topic_config_init(&got);
	ck_assert_uint_eq(got.max_attempts, 5);
	ck_assert_uint_eq(got.retry_delay_ms, 1000);
	c.max_attempts = 3;
	c.retry_delay_ms = 250;
	h_create(db, "a", &c);
	mqlog_close(db);

	db = h_open(fx_dir);
	t = h_topic(db, "a");
	mqlog_topic_config_get(t, &got);
	ck_assert_uint_eq(got.max_attempts, 3);
	ck_assert_uint_eq(got.retry_delay_ms, 250);
	mqlog_topic_close(t);

	c.max_attempts = 0;
	ck_assert_int_eq(mqlog_topic_create(db, "b", &c), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(db), "max_attempts"));
	c.max_attempts = 1001;
	ck_assert_int_eq(mqlog_topic_create(db, "b", &c), MQLOG_EINVAL);
	c.max_attempts = 2;
	c.retry_delay_ms = 86400001u;
	ck_assert_int_eq(mqlog_topic_create(db, "b", &c), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(db), "retry_delay_ms"));
	ck_assert_int_eq(mqlog_topic_open(db, "b", &t), MQLOG_ENOENT);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Poison records                                                           */
/* ------------------------------------------------------------------------ */

START_TEST(test_poison_to_dlq)
{
	/* A record that always fails is delivered max_attempts times, then
	 * lands in t.dlq with its origin, attempt count and reason, while
	 * every record behind it is delivered once, in order, before its
	 * first retry comes due. */
	mqlog_consumer *c;
	mqlog_record recs[16];
	mqlog_consumer_stats st;
	struct h_recs rs = { 0 };
	int64_t poison_ts = -1, first_retry_at = -1;
	int good[10] = { 0 }, poison = 0, last_good = -1;
	double t0 = h_mono_ms();
	char b[256];

	setup_topic(1, 3, 300);
	append_n(g_t, 0, 10);
	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	while (poison < 3 && h_mono_ms() - t0 < 10000) {
		size_t n = 0;
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 16, 100, &n), 0);
		for (size_t i = 0; i < n; i++) {
			int v = atoi((const char *)recs[i].value.data + 1);
			if (v != 3) {
				ck_assert_int_gt(v, last_good);
				last_good = v;
				good[v]++;
				continue;
			}
			poison++;
			if (poison == 1)
				poison_ts = recs[i].timestamp;
			if (poison == 2) {
				/* Every record behind it came first. */
				first_retry_at = (int64_t)h_mono_ms();
				for (int k = 0; k < 10; k++)
					ck_assert_int_eq(good[k], k != 3);
			}
			ck_assert_int_eq(hdr_i64(&recs[i], "mqlog.attempt"),
					 poison == 1 ? -1 : poison - 1);
			ck_assert_int_eq(
				mqlog_consumer_nack(c, &recs[i],
						    MQLOG_NACK_DEFAULT_DELAY,
						    "boom"),
				0);
		}
	}
	ck_assert_int_eq(poison, 3);
	ck_assert_int_ge(first_retry_at, 0);
	for (int v = 0; v < 10; v++)
		ck_assert_int_eq(good[v], v == 3 ? 0 : 1);
	ck_assert_int_eq(mqlog_consumer_stats_get(c, &st), 0);
	ck_assert_uint_eq(st.retried, 2);
	ck_assert_uint_eq(st.dead_lettered, 1);
	ck_assert_uint_eq(st.delivered, 9 + 3);
	mqlog_consumer_close(c);

	/* Two retry copies (attempts 1 and 2), one dead letter (3). */
	ck_assert_uint_eq(count_val(g_db, "t.retry", 0, "v3"), 2);
	read_topic(g_db, "t.dlq", 0, &rs);
	ck_assert_uint_eq(rs.n, 1);
	ck_assert_str_eq(rs.r[0].val, "v3");
	h_recs_free(&rs);
	{
		mqlog_topic *d = h_topic(g_db, "t.dlq");
		mqlog_reader *r;
		mqlog_record rec;
		ck_assert_int_eq(mqlog_reader_open(d, 0, &r), 0);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_str_eq(hdr(&rec, "mqlog.attempt", b, sizeof b), "3");
		ck_assert_str_eq(hdr(&rec, "mqlog.origin.topic", b, sizeof b),
				 "t");
		ck_assert_str_eq(
			hdr(&rec, "mqlog.origin.partition", b, sizeof b), "0");
		ck_assert_str_eq(hdr(&rec, "mqlog.origin.offset", b, sizeof b),
				 "3");
		ck_assert_int_eq(hdr_i64(&rec, "mqlog.origin.timestamp"),
				 poison_ts);
		ck_assert_str_eq(hdr(&rec, "mqlog.group", b, sizeof b), "g");
		ck_assert_str_eq(hdr(&rec, "mqlog.reason", b, sizeof b),
				 "boom");
		ck_assert_int_eq(hdr_i64(&rec, "mqlog.due"), -1);
		ck_assert(h_contains(hdr(&rec, "mqlog.source", b, sizeof b),
				     "t.retry:0:"));
		mqlog_reader_close(r);
		mqlog_topic_close(d);
	}
	teardown_topic();
}
END_TEST

START_TEST(test_poison_threads_keep_flowing)
{
	/* With four partitions and two members, one poison record per
	 * partition goes to the dead-letter topic and every other record is
	 * processed exactly once by the group. */
	enum {
		PARTS = 4,
		PER = 40
	};
	mqlog_consumer *c[2];
	mqlog_record recs[32];
	int seen[PARTS][PER] = { { 0 } };
	size_t dead = 0;
	double t0 = h_mono_ms();

	setup_topic(PARTS, 2, 0);
	for (uint32_t p = 0; p < PARTS; p++)
		append_n(g_t, p, PER);
	/* Leases long enough that a loaded machine's stall between two polls
	 * does not hand a partition over with a poll uncommitted: "exactly
	 * once" here is about nacks, not about lost leases. */
	for (int k = 0; k < 2; k++) {
		mqlog_consumer_options o = h_group_opts("g", HB_MS, LEASE_MS);
		o.lease_ms = 5000;
		ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c[k]), 0);
	}
	while (dead < PARTS && h_mono_ms() - t0 < 15000) {
		for (int k = 0; k < 2; k++) {
			size_t n = 0;
			ck_assert_int_eq(
				mqlog_consumer_poll(c[k], recs, 32, 20, &n), 0);
			for (size_t i = 0; i < n; i++) {
				int v = atoi((const char *)recs[i].value.data +
					     1);
				char b[32];
				uint32_t p = (uint32_t)atoi(
					hdr(&recs[i], "mqlog.origin.partition",
					    b, sizeof b));
				if (!b[0])
					p = recs[i].partition;
				if (v == 7) {
					if (hdr_i64(&recs[i],
						    "mqlog.attempt") == 1)
						dead++;
					ck_assert_int_eq(mqlog_consumer_nack(
								 c[k], &recs[i],
								 0, NULL),
							 0);
					continue;
				}
				seen[p][v]++;
			}
		}
	}
	ck_assert_uint_eq(dead, PARTS);
	for (int k = 0; k < 2; k++)
		mqlog_consumer_close(c[k]);
	for (uint32_t p = 0; p < PARTS; p++) {
		for (int v = 0; v < PER; v++)
			ck_assert_int_eq(seen[p][v], v == 7 ? 0 : 1);
		ck_assert_uint_eq(count_val(g_db, "t.dlq", p, "v7"), 1);
	}
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Delays                                                                   */
/* ------------------------------------------------------------------------ */

/* Poll @c until a record with value @val arrives; its wall time of
 * arrival, or -1 after @limit_ms. */
static int64_t wait_for(mqlog_consumer *c, const char *val, int limit_ms,
			mqlog_record *out_copy)
{
	mqlog_record recs[8];
	double t0 = h_mono_ms();

	while (h_mono_ms() - t0 < limit_ms) {
		size_t n = 0;
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 50, &n), 0);
		for (size_t i = 0; i < n; i++) {
			if (val_is(&recs[i], val)) {
				if (out_copy)
					*out_copy = recs[i];
				return h_wall_ms();
			}
		}
	}
	return -1;
}

START_TEST(test_delay_honoured)
{
	/* A nack with a delay of 400 ms is delivered again no earlier than
	 * its due time and within a generous bound; the default delay of
	 * the topic (250 ms) is used when none is given. */
	mqlog_consumer *c;
	mqlog_record rec;
	int64_t nacked, back, due;

	setup_topic(1, 5, 250);
	h_append1(g_t, 0, "x");
	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	ck_assert_int_ge(wait_for(c, "x", 2000, &rec), 0);
	nacked = h_wall_ms();
	ck_assert_int_eq(mqlog_consumer_nack(c, &rec, 400, NULL), 0);
	back = wait_for(c, "x", 5000, &rec);
	ck_assert_int_ge(back, 0);
	due = hdr_i64(&rec, "mqlog.due");
	ck_assert_int_ge(due, nacked + 400);
	ck_assert_int_ge(back, due);
	ck_assert_int_le(back - nacked, 400 + 1500);

	nacked = h_wall_ms();
	ck_assert_int_eq(mqlog_consumer_nack(c, &rec, MQLOG_NACK_DEFAULT_DELAY,
					     NULL),
			 0);
	back = wait_for(c, "x", 5000, &rec);
	ck_assert_int_ge(back, 0);
	ck_assert_int_ge(back, hdr_i64(&rec, "mqlog.due"));
	ck_assert_int_ge(back - nacked, 250);
	ck_assert_int_le(back - nacked, 250 + 1500);
	ck_assert_int_eq(hdr_i64(&rec, "mqlog.attempt"), 2);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

START_TEST(test_schedule)
{
	/* A scheduled record is not delivered before its due time; the
	 * partition's later records are delivered meanwhile; every group
	 * gets it. */
	mqlog_consumer *c, *c2;
	mqlog_msg m = h_msg("later", MQLOG_TIMESTAMP_NOW);
	mqlog_header bad = { { "mqlog.due", 9 }, { "1", 1 } };
	int64_t due, got_now, got_later;
	uint64_t off = 99;

	setup_topic(2, 5, 0);
	due = h_wall_ms() + 500;
	ck_assert_int_eq(mqlog_schedule(g_t, &m, due, &off), 0);
	ck_assert_uint_eq(off, 0);
	h_append1(g_t, 0, "now");
	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	c2 = h_open_group(g_t, "h", HB_MS, LEASE_MS);
	got_now = wait_for(c, "now", 2000, NULL);
	ck_assert_int_ge(got_now, 0);
	ck_assert_int_lt(got_now, due);
	got_later = wait_for(c, "later", 5000, NULL);
	ck_assert_int_ge(got_later, due);
	ck_assert_int_le(got_later, due + 1500);
	ck_assert_int_ge(wait_for(c2, "later", 5000, NULL), due);
	mqlog_consumer_close(c);
	mqlog_consumer_close(c2);

	/* Reserved headers other than mqlog.expires are refused. */
	m.headers = &bad;
	m.header_count = 1;
	ck_assert_int_eq(mqlog_schedule(g_t, &m, due, NULL), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "reserved"));
	ck_assert_uint_eq(count_val(g_db, "t.retry", 0, "later") +
				  count_val(g_db, "t.retry", 1, "later"),
			  1);
	teardown_topic();
}
END_TEST

START_TEST(test_due_in_topic_holds)
{
	/* A record with mqlog.due in the topic itself holds its partition
	 * (the position stays on it, so a commit does not pass it); a seek
	 * past it moves on. */
	char due[32];
	mqlog_header h = { { "mqlog.due", 9 }, { due, 0 } };
	mqlog_msg m[2];
	mqlog_consumer *c;
	mqlog_consumer_stats st;
	mqlog_record recs[4];
	uint64_t pos = 99;
	size_t n = 9;

	setup_topic(1, 5, 0);
	snprintf(due, sizeof due, "%" PRId64, h_wall_ms() + 3600000);
	h.value.len = strlen(due);
	m[0] = h_msg("a", MQLOG_TIMESTAMP_NOW);
	m[0].headers = &h;
	m[0].header_count = 1;
	m[1] = h_msg("b", MQLOG_TIMESTAMP_NOW);
	ck_assert_int_eq(mqlog_append(g_t, 0, m, 2, MQLOG_SYNC_DEFAULT, NULL),
			 0);
	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 4, 200, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &pos), 0);
	ck_assert_uint_eq(pos, 0);
	ck_assert_int_eq(mqlog_consumer_stats_get(c, &st), 0);
	ck_assert_uint_ge(st.held, 1);
	ck_assert_int_eq(mqlog_consumer_seek(c, 0, 1), 0);
	ck_assert_int_ge(wait_for(c, "b", 2000, NULL), 0);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Expiry                                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(test_ttl_skipped)
{
	/* Records whose mqlog.expires has passed are never delivered, to a
	 * group member or a standalone consumer, and are counted. */
	char past[32], future[32];
	mqlog_header hp = { { "mqlog.expires", 13 }, { past, 0 } };
	mqlog_header hf = { { "mqlog.expires", 13 }, { future, 0 } };
	mqlog_msg m[5];
	mqlog_consumer *c[2];
	mqlog_consumer_options so;
	mqlog_consumer_stats st;
	mqlog_record recs[8];
	uint32_t p0 = 0;

	setup_topic(1, 5, 0);
	snprintf(past, sizeof past, "%" PRId64, h_wall_ms() - 1);
	snprintf(future, sizeof future, "%" PRId64, h_wall_ms() + 600000);
	hp.value.len = strlen(past);
	hf.value.len = strlen(future);
	m[0] = h_msg("a", MQLOG_TIMESTAMP_NOW);
	m[1] = h_msg("old1", MQLOG_TIMESTAMP_NOW);
	m[1].headers = &hp;
	m[1].header_count = 1;
	m[2] = h_msg("fresh", MQLOG_TIMESTAMP_NOW);
	m[2].headers = &hf;
	m[2].header_count = 1;
	m[3] = m[1];
	m[3].value.data = "old2";
	m[4] = h_msg("b", MQLOG_TIMESTAMP_NOW);
	ck_assert_int_eq(mqlog_append(g_t, 0, m, 5, MQLOG_SYNC_DEFAULT, NULL),
			 0);

	c[0] = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	mqlog_consumer_options_init(&so);
	ck_assert_int_eq(mqlog_consumer_open(g_t, &so, &c[1]), 0);
	ck_assert_int_eq(mqlog_consumer_assign(c[1], &p0, 1), 0);
	for (int k = 0; k < 2; k++) {
		size_t n = 0, total = 0;
		const char *want[] = { "a", "fresh", "b" };
		double t0 = h_mono_ms();
		while (total < 3 && h_mono_ms() - t0 < 3000) {
			ck_assert_int_eq(mqlog_consumer_poll(c[k], recs + total,
							     8 - total, 50, &n),
					 0);
			total += n;
		}
		ck_assert_uint_eq(total, 3);
		for (size_t i = 0; i < 3; i++)
			ck_assert(val_is(&recs[i], want[i]));
		ck_assert_int_eq(mqlog_consumer_poll(c[k], recs, 8, 100, &n),
				 0);
		ck_assert_uint_eq(n, 0);
		ck_assert_int_eq(mqlog_consumer_stats_get(c[k], &st), 0);
		ck_assert_uint_eq(st.expired, 2);
		ck_assert_uint_eq(st.delivered, 3);
	}
	mqlog_consumer_close(c[0]);
	mqlog_consumer_close(c[1]);
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Groups and arguments                                                     */
/* ------------------------------------------------------------------------ */

START_TEST(test_groups_apart)
{
	/* A retry copy made by group g goes back to g only; group h, which
	 * also reads t.retry, skips it and counts it. */
	mqlog_consumer *g, *h;
	mqlog_record rec;
	mqlog_consumer_stats st;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "x");
	g = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	ck_assert_int_ge(wait_for(g, "x", 2000, &rec), 0);
	ck_assert_int_eq(mqlog_consumer_nack(g, &rec, 0, NULL), 0);
	ck_assert_int_ge(wait_for(g, "x", 2000, &rec), 0);
	ck_assert_int_eq(hdr_i64(&rec, "mqlog.attempt"), 1);

	h = h_open_group(g_t, "h", HB_MS, LEASE_MS);
	ck_assert_int_ge(wait_for(h, "x", 2000, NULL), 0); /* from t */
	ck_assert_int_eq(wait_for(h, "x", 300, NULL), -1); /* not g's copy */
	ck_assert_int_eq(mqlog_consumer_stats_get(h, &st), 0);
	ck_assert_uint_eq(st.foreign, 1);
	ck_assert_uint_eq(st.delivered, 1);
	mqlog_consumer_close(g);
	mqlog_consumer_close(h);
	teardown_topic();
}
END_TEST

START_TEST(test_nack_bad_args)
{
	/* Wrong calls get MQLOG_EINVAL with a message and change nothing:
	 * no retry topic appears and the committed offset stays. */
	mqlog_consumer *c, *s;
	mqlog_consumer_options so;
	mqlog_record rec, fake;
	char big[1100];
	uint64_t committed = 77;
	uint32_t p0 = 0;
	mqlog_topic *x;

	setup_topic(1, 5, 0);
	append_n(g_t, 0, 3);
	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	ck_assert_int_ge(wait_for(c, "v0", 2000, &rec), 0);

	ck_assert_int_eq(mqlog_consumer_nack(NULL, &rec, 0, NULL),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_nack(c, NULL, 0, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_nack(c, &rec, -5, NULL), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "delay"));
	ck_assert_int_eq(mqlog_consumer_nack(c, &rec, 86400001, NULL),
			 MQLOG_EINVAL);
	memset(big, 'r', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert_int_eq(mqlog_consumer_nack(c, &rec, 0, big), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "reason"));
	fake = rec;
	fake.offset = 1000;
	ck_assert_int_eq(mqlog_consumer_nack(c, &fake, 0, NULL), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "not delivered"));
	fake = rec;
	fake.partition = 5;
	ck_assert_int_eq(mqlog_consumer_nack(c, &fake, 0, NULL), MQLOG_EINVAL);

	mqlog_consumer_options_init(&so);
	ck_assert_int_eq(mqlog_consumer_open(g_t, &so, &s), 0);
	ck_assert_int_eq(mqlog_consumer_assign(s, &p0, 1), 0);
	ck_assert_int_eq(mqlog_consumer_nack(s, &rec, 0, NULL), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "group"));
	mqlog_consumer_close(s);

	ck_assert_int_eq(mqlog_topic_open(g_db, "t.retry", &x), MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_topic_open(g_db, "t.dlq", &x), MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &committed),
			 MQLOG_ENOENT);
	mqlog_consumer_close(c);

	/* A consumer of a dead-letter topic does not nack. */
	{
		mqlog_topic_config cfg = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);
		mqlog_topic *d;
		h_create(g_db, "t.dlq", &cfg);
		d = h_topic(g_db, "t.dlq");
		h_append1(d, 0, "dead");
		c = h_open_group(d, "g", HB_MS, LEASE_MS);
		ck_assert_int_ge(wait_for(c, "dead", 2000, &rec), 0);
		ck_assert_int_eq(mqlog_consumer_nack(c, &rec, 0, NULL),
				 MQLOG_EINVAL);
		ck_assert(h_contains(mqlog_errmsg(NULL), "dead-letter"));
		mqlog_consumer_close(c);
		mqlog_topic_close(d);
	}
	ck_assert_int_eq(mqlog_dlq_replay(g_db, "nope", NULL, 0, NULL),
			 MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_dlq_replay(g_db, "t.dlq", NULL, 0, NULL),
			 MQLOG_EINVAL);
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Crashes                                                                  */
/* ------------------------------------------------------------------------ */

static const char *const crash_points[] = {
	"intent.before_commit",
	"intent.after_commit",
	"intent.after_append",
};

/* Child: consume t as group g, nack "v2" with @point armed (dies). */
static void child_nack(const char *dir, const char *point)
{
	mqlog *db;
	mqlog_topic *t;
	mqlog_consumer *c;
	mqlog_consumer_options o = h_group_opts("g", HB_MS, LEASE_MS);
	mqlog_record recs[16];
	size_t n = 0;

	if (mqlog_open(dir, NULL, &db) || mqlog_topic_open(db, "t", &t) ||
	    mqlog_consumer_open(t, &o, &c))
		_exit(10);
	for (int tries = 0; tries < 100; tries++) {
		if (mqlog_consumer_poll(c, recs, 16, 50, &n))
			_exit(11);
		for (size_t i = 0; i < n; i++) {
			if (!val_is(&recs[i], "v2"))
				continue;
			io_crash_arm(point, 1);
			mqlog_consumer_nack(c, &recs[i], 0, "crash");
			_exit(12); /* the crash point did not fire */
		}
	}
	_exit(13);
}

START_TEST(test_crash_during_nack)
{
	/* kill -9 before the commit, between commit and append, and between
	 * append and the intent's removal: afterwards "v2" has exactly one
	 * copy in t.retry, the group gets it exactly once (from t when the
	 * nack never committed, else from t.retry), and no intent is left. */
	for (size_t k = 0; k < sizeof crash_points / sizeof crash_points[0];
	     k++) {
		const char *point = crash_points[k];
		char *dir = fx_tmpdir();
		mqlog_topic_config cfg = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);
		mqlog_consumer *c;
		mqlog_record recs[16];
		struct intent_item *items;
		size_t nitems;
		int status, v2_main = 0, v2_retry = 0, others = 0;
		double t0;
		pid_t pid;
		mqlog *db;
		mqlog_topic *t;

		cfg.max_attempts = 5;
		db = h_open(dir);
		h_create(db, "t", &cfg);
		t = h_topic(db, "t");
		append_n(t, 0, 5);
		mqlog_topic_close(t);
		mqlog_close(db);

		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			child_nack(dir, point);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) &&
				      WTERMSIG(status) == SIGKILL,
			      "%s: child status %d", point, status);

		db = h_open(dir);
		t = h_topic(db, "t");
		ck_assert_uint_eq(count_val(db, "t.retry", 0, "v2"),
				  k == 2 ? 1 : 0);
		c = h_open_group(t, "g", HB_MS, LEASE_MS);
		t0 = h_mono_ms();
		while (h_mono_ms() - t0 < 1500) {
			size_t n = 0;
			ck_assert_int_eq(
				mqlog_consumer_poll(c, recs, 16, 50, &n), 0);
			for (size_t i = 0; i < n; i++) {
				if (!val_is(&recs[i], "v2")) {
					others++;
					continue;
				}
				if (hdr_i64(&recs[i], "mqlog.attempt") == 1) {
					v2_retry++;
					continue;
				}
				v2_main++;
				/* Redelivered: the nack never happened. */
				ck_assert_int_eq(mqlog_consumer_nack(
							 c, &recs[i], 0, NULL),
						 0);
			}
		}
		ck_assert_msg(v2_main == (k == 0 ? 1 : 0), "%s: v2 from t %d",
			      point, v2_main);
		ck_assert_msg(v2_retry == 1, "%s: v2 from t.retry %d", point,
			      v2_retry);
		ck_assert_uint_eq(count_val(db, "t.retry", 0, "v2"), 1);
		mqlog_consumer_close(c);
		ck_assert_int_eq(index_intent_list(db->ix, "g", t->meta.id,
						   UINT32_MAX, &items, &nitems),
				 0);
		ck_assert_uint_eq(nitems, 0);
		index_intents_free(items, nitems);
		mqlog_topic_close(t);
		mqlog_close(db);
		fx_rmtree(dir);
		free(dir);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Replay                                                                   */
/* ------------------------------------------------------------------------ */

/* Put "d0".."d<n-1>" into t.dlq through nacks (max_attempts 1). */
static void fill_dlq(int n)
{
	mqlog_consumer *c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	mqlog_record recs[16];
	int dead = 0;
	double t0 = h_mono_ms();
	char v[16];

	for (int i = 0; i < n; i++) {
		snprintf(v, sizeof v, "d%d", i);
		h_append1(g_t, 0, v);
	}
	while (dead < n && h_mono_ms() - t0 < 5000) {
		size_t got = 0;
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 16, 50, &got), 0);
		for (size_t i = 0; i < got; i++, dead++)
			ck_assert_int_eq(
				mqlog_consumer_nack(c, &recs[i], 0, "bad"), 0);
	}
	ck_assert_int_eq(dead, n);
	mqlog_consumer_close(c);
}

START_TEST(test_replay)
{
	/* Replay puts each dead letter back into t once, without the
	 * reserved headers; a second replay finds nothing new. */
	uint64_t n = 99;
	struct h_recs rs = { 0 };

	setup_topic(1, 1, 0);
	fill_dlq(4);
	ck_assert_int_eq(mqlog_dlq_replay(g_db, "t", NULL, 3, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(mqlog_dlq_replay(g_db, "t", NULL, 0, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(mqlog_dlq_replay(g_db, "t", NULL, 0, &n), 0);
	ck_assert_uint_eq(n, 0);
	h_read_all(g_t, 0, &rs);
	ck_assert_uint_eq(rs.n, 8);
	for (int i = 0; i < 4; i++) {
		char v[16];
		snprintf(v, sizeof v, "d%d", i);
		ck_assert_str_eq(rs.r[4 + i].val, v);
		ck_assert_uint_eq(rs.r[4 + i].nh, 1); /* mqlog.source only */
	}
	h_recs_free(&rs);
	teardown_topic();
}
END_TEST

START_TEST(test_replay_crash)
{
	/* A replay killed at each step and run again replays every dead
	 * letter exactly once. */
	for (size_t k = 0; k < sizeof crash_points / sizeof crash_points[0];
	     k++) {
		int status;
		pid_t pid;
		uint64_t n = 0;

		setup_topic(1, 1, 0);
		fill_dlq(3);
		teardown_topic();
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			mqlog *db;
			if (mqlog_open(fx_dir, NULL, &db))
				_exit(10);
			io_crash_arm(crash_points[k], 2);
			mqlog_dlq_replay(db, "t", NULL, 0, NULL);
			_exit(12);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) &&
				      WTERMSIG(status) == SIGKILL,
			      "%s: child status %d", crash_points[k], status);
		g_db = h_open(fx_dir);
		g_t = h_topic(g_db, "t");
		ck_assert_int_eq(mqlog_dlq_replay(g_db, "t", NULL, 0, &n), 0);
		for (int i = 0; i < 3; i++) {
			char v[16];
			snprintf(v, sizeof v, "d%d", i);
			ck_assert_msg(count_val(g_db, "t", 0, v) == 2,
				      "%s: %s appears %zu times",
				      crash_points[k], v,
				      count_val(g_db, "t", 0, v));
		}
		teardown_topic();
		fx_rmtree(fx_dir);
		ck_assert_int_eq(mkdir(fx_dir, 0700), 0);
	}
}
END_TEST

static Suite *dlq_suite(void)
{
	Suite *s = suite_create("dlq");
	TCase *tc = tcase_create("dlq");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_config_roundtrip);
	tcase_add_test(tc, test_poison_to_dlq);
	tcase_add_test(tc, test_poison_threads_keep_flowing);
	tcase_add_test(tc, test_delay_honoured);
	tcase_add_test(tc, test_schedule);
	tcase_add_test(tc, test_due_in_topic_holds);
	tcase_add_test(tc, test_ttl_skipped);
	tcase_add_test(tc, test_groups_apart);
	tcase_add_test(tc, test_nack_bad_args);
	tcase_add_test(tc, test_crash_during_nack);
	tcase_add_test(tc, test_replay);
	tcase_add_test(tc, test_replay_crash);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(dlq_suite)
