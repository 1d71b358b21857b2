/*
 * test_intents.c - the inside of retries and dead letters: the reserved
 * headers as delivery reads them (malformed values count as absent, many
 * headers, headers that do not decode), delivery intents (the encoding
 * round trip, every kind of damage refused, delivery with and without the
 * check, a hint past the destination's end, a replay to a topic that does
 * not exist), their completion, every write refused on a read-only
 * directory, and the consumer calls around them (pending intents retried
 * by later polls, nack and schedule refusals, replay of dead letters
 * without origin headers, the auto-commit interval, a forced reset seen
 * at the next commit).
 *
 * Every call that must fail is checked for its error code, for a message
 * that names what was wrong, and for leaving things as they were.
 */
#include "dlq_topic.h"

#include "dlq.h"
#include "engine.h"

static mqlog_header hdr_of(const char *k, const char *v)
{
	mqlog_header h = { { k, strlen(k) }, { v, v ? strlen(v) : 0 } };
	return h;
}

/* Append one record of value @val with @n headers to @t partition @p and
 * return its offset. */
static uint64_t append_h(mqlog_topic *t, uint32_t p, const char *key,
			 const char *val, const mqlog_header *hs, size_t n)
{
	mqlog_msg m = h_msg(val, MQLOG_TIMESTAMP_NOW);
	uint64_t off = UINT64_MAX;
	int rc;

	if (key) {
		m.key.data = key;
		m.key.len = strlen(key);
	}
	m.headers = hs;
	m.header_count = n;
	rc = mqlog_append(t, p, &m, 1, MQLOG_SYNC_DEFAULT, &off);
	ck_assert_msg(rc == 0, "append: %d %s", rc, mqlog_errmsg(NULL));
	return off;
}

/* Read the record at @off of @t/@p with @r (valid until the next read). */
static mqlog_record read_at(mqlog_reader *r, uint64_t off)
{
	mqlog_record rec;

	ck_assert_int_eq(mqlog_reader_seek(r, off), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, off);
	return rec;
}

/* The value of header @name of @rec as a C string in @buf ("" if none,
 * "(null)" for a null value). */
static const char *hdr(const mqlog_record *rec, const char *name, char *buf,
		       size_t size)
{
	mqlog_bytes v = { NULL, 0 };

	buf[0] = '\0';
	if (mqlog_record_header(rec, name, strlen(name), &v) != 1)
		return buf;
	if (!v.data) {
		snprintf(buf, size, "(null)");
		return buf;
	}
	snprintf(buf, size, "%.*s", (int)v.len, (const char *)v.data);
	return buf;
}

/* Number of records in @topic partition @p (0 when there is no topic). */
static size_t count_recs(mqlog *db, const char *topic, uint32_t p)
{
	struct h_recs rs = { 0 };
	mqlog_topic *t = NULL;
	size_t n;

	if (mqlog_topic_open(db, topic, &t) == MQLOG_ENOENT)
		return 0;
	ck_assert_ptr_nonnull(t);
	h_read_all(t, p, &rs);
	n = rs.n;
	h_recs_free(&rs);
	mqlog_topic_close(t);
	return n;
}

static bool topic_exists(mqlog *db, const char *name)
{
	mqlog_topic *t = NULL;
	int rc = mqlog_topic_open(db, name, &t);

	ck_assert(rc == 0 || rc == MQLOG_ENOENT);
	mqlog_topic_close(t);
	return rc == 0;
}

/* ------------------------------------------------------------------------ */
/* Reserved headers                                                         */
/* ------------------------------------------------------------------------ */

START_TEST(test_meta_malformed)
{
	/* Values of mqlog.attempt, mqlog.due and mqlog.expires that are not
	 * plain decimal numbers in range count as absent; good values,
	 * negative ones included where they make sense, are read. */
	static const struct {
		const char *name, *val;
		bool ok;     /* read as a value */
		int64_t got; /* then this */
	} cases[] = {
		{ DLQ_H_ATTEMPT, "7", true, 7 },
		{ DLQ_H_ATTEMPT, "4294967295", true, 4294967295 },
		{ DLQ_H_ATTEMPT, "4294967296", false, 0 },
		{ DLQ_H_ATTEMPT, "-1", false, 0 },
		{ DLQ_H_ATTEMPT, "", false, 0 },
		{ DLQ_H_ATTEMPT, NULL, false, 0 },
		{ DLQ_H_ATTEMPT, "3x", false, 0 },
		{ DLQ_H_ATTEMPT, " 3", false, 0 },
		{ DLQ_H_DUE, "-", false, 0 },
		{ DLQ_H_DUE, "-5", true, -5 },
		{ DLQ_H_DUE, "1700000000000", true, 1700000000000 },
		{ DLQ_H_DUE, "9223372036854775807", true, INT64_MAX },
		{ DLQ_H_DUE, "9223372036854775808", false, 0 },
		{ DLQ_H_DUE, "99999999999999999999", false, 0 },
		{ DLQ_H_DUE, "000000000000000000001", false, 0 }, /* 21 chars */
		{ DLQ_H_DUE, "12:00", false, 0 },
		{ DLQ_H_EXPIRES, "-9223372036854775807", true, -INT64_MAX },
		{ DLQ_H_EXPIRES, "1e9", false, 0 },
		{ DLQ_H_EXPIRES, "+5", false, 0 },
	};
	mqlog_reader *r;

	setup_topic(1, 5, 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mqlog_header hs[2] = { hdr_of("app", "x"),
				       hdr_of(cases[i].name, cases[i].val) };
		append_h(g_t, 0, NULL, "v", hs, 2);
	}
	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mqlog_record rec = read_at(r, i);
		struct dlq_meta m;
		const char *nm = cases[i].name;

		memset(&m, 0x5A, sizeof m);
		ck_assert_int_eq(dlq_meta_get(&rec, &m), 0);
		ck_assert_ptr_null(m.group.data);
		if (!strcmp(nm, DLQ_H_ATTEMPT)) {
			ck_assert_msg(m.has_attempt == cases[i].ok,
				      "attempt '%s'", cases[i].val);
			ck_assert_uint_eq(m.attempt,
					  cases[i].ok ? cases[i].got : 0);
		} else {
			ck_assert(!m.has_attempt);
		}
		if (!strcmp(nm, DLQ_H_DUE) && cases[i].ok)
			ck_assert_int_eq(m.due, cases[i].got);
		else
			ck_assert_msg(m.due == INT64_MIN, "due '%s'",
				      cases[i].val);
		if (!strcmp(nm, DLQ_H_EXPIRES) && cases[i].ok)
			ck_assert_int_eq(m.expires, cases[i].got);
		else
			ck_assert_msg(m.expires == INT64_MAX, "expires '%s'",
				      cases[i].val);
	}
	mqlog_reader_close(r);
	teardown_topic();
}
END_TEST

START_TEST(test_malformed_due_delivered)
{
	/* A record whose mqlog.due is not a number is delivered at once
	 * (nothing holds its partition), and so is the record after it. */
	mqlog_header bad = hdr_of(DLQ_H_DUE, "tomorrow");
	mqlog_consumer *c;
	mqlog_consumer_stats st;
	mqlog_record recs[4];
	size_t n = 0, total = 0;
	double t0;

	setup_topic(1, 5, 0);
	append_h(g_t, 0, NULL, "a", &bad, 1);
	h_append1(g_t, 0, "b");
	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	t0 = h_mono_ms();
	while (total < 2 && h_mono_ms() - t0 < 10000) {
		ck_assert_int_eq(mqlog_consumer_poll(c, recs + total, 4 - total,
						     50, &n),
				 0);
		total += n;
	}
	ck_assert_uint_eq(total, 2);
	ck_assert_uint_eq(recs[0].offset, 0);
	ck_assert_uint_eq(recs[1].offset, 1);
	ck_assert_int_eq(mqlog_consumer_stats_get(c, &st), 0);
	ck_assert_uint_eq(st.held, 0);
	ck_assert_uint_eq(st.delivered, 2);
	ck_assert_int_eq(mqlog_consumer_stats_get(c, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_stats_get(NULL, &st), MQLOG_EINVAL);
	h_msg_has("NULL");
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

START_TEST(test_meta_many_headers)
{
	/* A record with more headers than the decoder keeps on the stack
	 * has its reserved headers read all the same, wherever they are;
	 * one without reserved headers reads as none. */
	mqlog_header hs[40];
	char names[40][16];
	mqlog_reader *r;
	mqlog_record rec;
	struct dlq_meta m;

	setup_topic(1, 5, 0);
	for (int i = 0; i < 40; i++) {
		snprintf(names[i], sizeof names[i], "h%d", i);
		hs[i] = hdr_of(names[i], "x");
	}
	append_h(g_t, 0, NULL, "plain", hs, 40);
	hs[0] = hdr_of(DLQ_H_GROUP, "grp");
	hs[17] = hdr_of(DLQ_H_ATTEMPT, "3");
	hs[33] = hdr_of(DLQ_H_DUE, "123");
	hs[39] = hdr_of(DLQ_H_EXPIRES, "456");
	append_h(g_t, 0, NULL, "reserved", hs, 40);
	hs[17] = hdr_of(DLQ_H_ATTEMPT, "three");
	hs[33] = hdr_of(DLQ_H_DUE, "");
	append_h(g_t, 0, NULL, "malformed", hs, 40);

	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	rec = read_at(r, 0);
	ck_assert_uint_eq(rec.header_count, 40);
	ck_assert_int_eq(dlq_meta_get(&rec, &m), 0);
	ck_assert(!m.has_attempt);
	ck_assert_int_eq(m.due, INT64_MIN);
	ck_assert_int_eq(m.expires, INT64_MAX);
	ck_assert_ptr_null(m.group.data);

	rec = read_at(r, 1);
	ck_assert_int_eq(dlq_meta_get(&rec, &m), 0);
	ck_assert(m.has_attempt);
	ck_assert_uint_eq(m.attempt, 3);
	ck_assert_int_eq(m.due, 123);
	ck_assert_int_eq(m.expires, 456);
	ck_assert_uint_eq(m.group.len, 3);
	ck_assert(memcmp(m.group.data, "grp", 3) == 0);

	rec = read_at(r, 2);
	ck_assert_int_eq(dlq_meta_get(&rec, &m), 0);
	ck_assert(!m.has_attempt);
	ck_assert_int_eq(m.due, INT64_MIN);
	ck_assert_int_eq(m.expires, 456);
	mqlog_reader_close(r);
	teardown_topic();
}
END_TEST

START_TEST(test_meta_headers_undecodable)
{
	/* Headers that do not decode are an error (MQLOG_ECORRUPT with a
	 * message), with few headers and with many; a nack of such a record
	 * is refused and moves nothing: no retry topic, nothing committed. */
	static const uint8_t junk[] = { 0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3 };
	mqlog_consumer *c;
	mqlog_record recs[4], fake;
	struct dlq_meta m;
	uint64_t committed = 99;
	size_t n = 0;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "a");
	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	for (int tries = 0; tries < 40 && n == 0; tries++)
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 4, 50, &n), 0);
	ck_assert_uint_eq(n, 1);

	fake = recs[0];
	fake.header_count = 2;
	fake.headers_raw = junk;
	fake.headers_raw_len = sizeof junk;
	ck_assert_int_eq(dlq_meta_get(&fake, &m), MQLOG_ECORRUPT);
	h_msg_has("malformed headers");
	fake.header_count = 3;
	fake.headers_raw = NULL;
	fake.headers_raw_len = 0;
	ck_assert_int_eq(dlq_meta_get(&fake, &m), MQLOG_ECORRUPT);
	fake.header_count = 40;
	fake.headers_raw = junk;
	fake.headers_raw_len = sizeof junk;
	ck_assert_int_eq(dlq_meta_get(&fake, &m), MQLOG_ECORRUPT);

	fake.header_count = 2;
	ck_assert_int_eq(mqlog_consumer_nack(c, &fake, 0, NULL),
			 MQLOG_ECORRUPT);
	h_msg_has("malformed headers");
	ck_assert(!topic_exists(g_db, "t.retry"));
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &committed),
			 MQLOG_ENOENT);
	ck_assert_uint_eq(committed, 99);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Intents                                                                  */
/* ------------------------------------------------------------------------ */

/* A copy of @rec (of t/0 at @off) for group g, to @dest. */
static struct dlq_copy copy_of(const mqlog_record *rec, int kind,
			       const char *dest)
{
	struct dlq_copy cp;

	memset(&cp, 0, sizeof cp);
	cp.kind = kind;
	cp.dest = dest;
	cp.dest_partition = 0;
	cp.create_partitions = 2;
	cp.create_sync = MQLOG_SYNC_NONE;
	cp.hint = 0;
	cp.src_topic = "t";
	cp.src_partition = rec->partition;
	cp.src_offset = rec->offset;
	cp.group = "g";
	cp.rec = rec;
	cp.origin_topic = NULL;
	cp.attempt = 2;
	cp.due = INT64_MIN;
	cp.reason = NULL;
	return cp;
}

/* Recompute the checksum of an intent that a test edited. */
static void reseal(uint8_t *buf, size_t len)
{
	mq_st64(buf + len - 8, record_key_hash(buf, len - 8));
}

START_TEST(test_intent_roundtrip)
{
	/* An intent carries the record whole to its destination: key,
	 * value, the application's headers (a null value included), the
	 * reserved headers a copy keeps (mqlog.expires, the origin), the
	 * new ones (group, attempt, due, a reason cut at 1024 bytes) and
	 * mqlog.source; the rest of the reserved headers are dropped.  The
	 * destination is created with the partitions the intent names.  A
	 * delivery with the check finds the copy and appends nothing. */
	mqlog_header hs[] = {
		hdr_of("app", "1"),
		hdr_of("nullv", NULL),
		hdr_of(DLQ_H_EXPIRES, "99999999999999"),
		hdr_of(DLQ_H_OTOPIC, "first"),
		hdr_of(DLQ_H_OPART, "4"),
		hdr_of(DLQ_H_ATTEMPT, "1"),
		hdr_of(DLQ_H_DUE, "5"),
		hdr_of(DLQ_H_REASON, "old"),
	};
	char reason[1500], b[1100];
	mqlog_reader *r;
	mqlog_record rec;
	mqlog_topic *d;
	struct dlq_copy cp;
	struct h_recs rs = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0;
	bool appended = false;

	setup_topic(1, 5, 0);
	append_h(g_t, 0, "k", "val", hs, sizeof hs / sizeof hs[0]);
	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	rec = read_at(r, 0);

	memset(reason, 'r', sizeof reason - 1);
	reason[sizeof reason - 1] = '\0';
	cp = copy_of(&rec, DLQ_KIND_RETRY, "t.retry");
	cp.dest_partition = 3; /* taken modulo the partitions */
	cp.due = 777;
	cp.reason = reason;
	ck_assert_int_eq(dlq_intent_encode(&cp, &buf, &len), 0);
	ck_assert_uint_gt(len, 40);
	ck_assert_int_eq(dlq_intent_deliver(g_db, buf, len, false, &appended),
			 0);
	ck_assert(appended);

	d = h_topic(g_db, "t.retry");
	ck_assert_uint_eq(mqlog_topic_partitions(d), 2);
	ck_assert_uint_eq(count_recs(g_db, "t.retry", 0), 0);
	mqlog_reader_close(r);
	ck_assert_int_eq(mqlog_reader_open(d, 1, &r), 0);
	rec = read_at(r, 0);
	ck_assert_uint_eq(rec.key.len, 1);
	ck_assert(memcmp(rec.key.data, "k", 1) == 0);
	ck_assert_uint_eq(rec.value.len, 3);
	ck_assert(memcmp(rec.value.data, "val", 3) == 0);
	ck_assert_str_eq(hdr(&rec, "app", b, sizeof b), "1");
	ck_assert_str_eq(hdr(&rec, "nullv", b, sizeof b), "(null)");
	ck_assert_str_eq(hdr(&rec, DLQ_H_EXPIRES, b, sizeof b),
			 "99999999999999");
	ck_assert_str_eq(hdr(&rec, DLQ_H_OTOPIC, b, sizeof b), "first");
	ck_assert_str_eq(hdr(&rec, DLQ_H_OPART, b, sizeof b), "4");
	ck_assert_str_eq(hdr(&rec, DLQ_H_ATTEMPT, b, sizeof b), "2");
	ck_assert_str_eq(hdr(&rec, DLQ_H_DUE, b, sizeof b), "777");
	ck_assert_str_eq(hdr(&rec, DLQ_H_GROUP, b, sizeof b), "g");
	ck_assert_str_eq(hdr(&rec, DLQ_H_SOURCE, b, sizeof b), "t:0:0:g");
	ck_assert_uint_eq(strlen(hdr(&rec, DLQ_H_REASON, b, sizeof b)),
			  DLQ_REASON_MAX);
	/* 2 application + expires + 2 origin + group, attempt, due, reason,
	 * source: the old attempt, due and reason are gone. */
	ck_assert_uint_eq(rec.header_count, 10);
	mqlog_reader_close(r);

	/* Delivered again with the check: found, nothing appended. */
	ck_assert_int_eq(dlq_intent_deliver(g_db, buf, len, true, &appended),
			 0);
	ck_assert(!appended);
	h_read_all(d, 1, &rs);
	ck_assert_uint_eq(rs.n, 1);
	h_recs_free(&rs);
	free(buf);
	mqlog_topic_close(d);
	teardown_topic();
}
END_TEST

START_TEST(test_intent_replay_and_nulls)
{
	/* A replay intent drops every reserved header but mqlog.source, and
	 * a null key and a null value stay null.  Delivering it with the
	 * check looks past records without headers and records of other
	 * sources before appending.  A replay to a topic that does not
	 * exist fails with MQLOG_ENOENT naming it, and creates nothing. */
	mqlog_header hs[] = { hdr_of(DLQ_H_GROUP, "g"),
			      hdr_of(DLQ_H_ATTEMPT, "5"), hdr_of("app", "y") };
	mqlog_header other = hdr_of(DLQ_H_SOURCE, "t:0:9:g");
	mqlog_msg m = h_msg("", MQLOG_TIMESTAMP_NOW);
	mqlog_reader *r;
	mqlog_record rec;
	mqlog_topic *o;
	struct dlq_copy cp;
	struct h_recs rs = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0;
	bool appended = true;
	char b[64];

	setup_topic(1, 5, 0);
	m.value.data = NULL;
	m.value.len = 0;
	m.headers = hs;
	m.header_count = 3;
	ck_assert_int_eq(mqlog_append(g_t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 0);
	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	rec = read_at(r, 0);
	ck_assert_ptr_null(rec.key.data);
	ck_assert_ptr_null(rec.value.data);

	/* The destination already holds a plain record and the copy of
	 * another source, both at or after the hint. */
	{
		mqlog_topic_config c = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);
		h_create(g_db, "orig", &c);
	}
	o = h_topic(g_db, "orig");
	h_append1(o, 0, "plain");
	append_h(o, 0, NULL, "other", &other, 1);

	cp = copy_of(&rec, DLQ_KIND_REPLAY, "orig");
	cp.src_topic = "t.dlq";
	ck_assert_int_eq(dlq_intent_encode(&cp, &buf, &len), 0);
	ck_assert_int_eq(dlq_intent_deliver(g_db, buf, len, true, &appended),
			 0);
	ck_assert(appended);
	h_read_all(o, 0, &rs);
	ck_assert_uint_eq(rs.n, 3);
	ck_assert_ptr_null(rs.r[2].val);
	ck_assert_ptr_null(rs.r[2].key);
	ck_assert_uint_eq(rs.r[2].nh, 2); /* app and mqlog.source */
	h_recs_free(&rs);
	mqlog_reader_close(r);
	ck_assert_int_eq(mqlog_reader_open(o, 0, &r), 0);
	rec = read_at(r, 2);
	ck_assert_str_eq(hdr(&rec, "app", b, sizeof b), "y");
	ck_assert_str_eq(hdr(&rec, DLQ_H_SOURCE, b, sizeof b), "t.dlq:0:0:g");
	ck_assert_str_eq(hdr(&rec, DLQ_H_GROUP, b, sizeof b), "");
	mqlog_reader_close(r);
	free(buf);

	/* To a topic that is not there. */
	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	rec = read_at(r, 0);
	cp = copy_of(&rec, DLQ_KIND_REPLAY, "gone");
	ck_assert_int_eq(dlq_intent_encode(&cp, &buf, &len), 0);
	appended = true;
	ck_assert_int_eq(dlq_intent_deliver(g_db, buf, len, true, &appended),
			 MQLOG_ENOENT);
	ck_assert(!appended);
	h_msg_has("deliver to gone");
	ck_assert(!topic_exists(g_db, "gone"));
	mqlog_reader_close(r);
	free(buf);
	mqlog_topic_close(o);
	teardown_topic();
}
END_TEST

START_TEST(test_intent_hint_past_end)
{
	/* An intent whose hint lies past the destination's end (its unsynced
	 * tail was lost in a power cut after the intent was stored) cannot
	 * hold the copy: the checked delivery appends it rather than fail
	 * for ever, and a second one finds it. */
	mqlog_reader *r;
	mqlog_record rec;
	struct dlq_copy cp;
	uint8_t *buf = NULL;
	size_t len = 0;
	bool appended = false;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "x");
	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	rec = read_at(r, 0);
	cp = copy_of(&rec, DLQ_KIND_DEAD, "t.dlq");
	cp.hint = 1000;
	ck_assert_int_eq(dlq_intent_encode(&cp, &buf, &len), 0);
	ck_assert_int_eq(dlq_intent_deliver(g_db, buf, len, true, &appended),
			 0);
	ck_assert(appended);
	ck_assert_uint_eq(count_recs(g_db, "t.dlq", 0), 1);
	mqlog_reader_close(r);
	free(buf);
	teardown_topic();
}
END_TEST

/* An intent to "t.retry" for a one-byte record, with the offsets of its
 * fields (the name length is at 32, the name at 34). */
static uint8_t *small_intent(mqlog_reader *r, size_t *len)
{
	mqlog_record rec = read_at(r, 0);
	struct dlq_copy cp = copy_of(&rec, DLQ_KIND_RETRY, "t.retry");
	uint8_t *buf = NULL;

	ck_assert_int_eq(dlq_intent_encode(&cp, &buf, len), 0);
	return buf;
}

START_TEST(test_intent_damaged)
{
	/* A damaged intent is refused with an error that says why, and
	 * nothing is delivered (the destination is not even created): any
	 * flipped byte or a cut (checksum), a newer version, and, with a
	 * good checksum, an empty or too long destination name, a name or
	 * header count running past the end, bytes left over, or an unknown
	 * kind. */
	mqlog_reader *r;
	uint8_t *good, *b;
	size_t len;
	bool appended = true;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "x");
	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	good = small_intent(r, &len);
	b = malloc(len + 16);
	ck_assert_ptr_nonnull(b);

	for (size_t i = 0; i < len; i++) {
		memcpy(b, good, len);
		b[i] ^= 0x10;
		ck_assert_int_eq(dlq_intent_deliver(g_db, b, len, true,
						    &appended),
				 MQLOG_ECORRUPT);
		ck_assert(!appended);
	}
	h_msg_has("checksum");
	for (size_t cut = 0; cut < len; cut += 7)
		ck_assert_int_eq(dlq_intent_deliver(g_db, good, cut, true,
						    NULL),
				 MQLOG_ECORRUPT);

	/* Version 2. */
	memcpy(b, good, len);
	mq_st16(b, 2);
	reseal(b, len);
	ck_assert_int_eq(dlq_intent_deliver(g_db, b, len, true, NULL),
			 MQLOG_EVERSION);
	h_msg_has("version 2");

	/* Kinds 0 and 4. */
	for (uint16_t k = 0; k <= 4; k += 4) {
		memcpy(b, good, len);
		mq_st16(b + 2, k);
		reseal(b, len);
		ck_assert_int_eq(dlq_intent_deliver(g_db, b, len, true, NULL),
				 MQLOG_ECORRUPT);
		h_msg_has("malformed");
	}

	/* Destination name of length 0, 250 and past the end. */
	{
		static const uint16_t lens[] = { 0, MQLOG_TOPIC_NAME_MAX + 1,
						 200 };
		for (size_t i = 0; i < 3; i++) {
			memcpy(b, good, len);
			mq_st16(b + 32, lens[i]);
			reseal(b, len);
			ck_assert_int_eq(dlq_intent_deliver(g_db, b, len, true,
							    NULL),
					 MQLOG_ECORRUPT);
			h_msg_has("malformed");
		}
	}
	/* Just a name length and two bytes of it. */
	{
		uint8_t s[44];
		memcpy(s, good, 32);
		mq_st16(s + 32, 10);
		memcpy(s + 34, "t.", 2);
		reseal(s, sizeof s);
		ck_assert_int_eq(dlq_intent_deliver(g_db, s, sizeof s, true,
						    NULL),
				 MQLOG_ECORRUPT);
		h_msg_has("malformed");
	}

	/* Header count: find it behind name, source, key and value. */
	{
		size_t at = 32;
		at += 2 + mq_ld16(good + at); /* name */
		at += 2 + mq_ld16(good + at); /* source */
		at += 4 + (mq_ld32(good + at) == 0xFFFFFFFFu ?
				   0 :
				   mq_ld32(good + at));	  /* key */
		at += 4 + mq_ld32(good + at);		  /* value "x" */
		ck_assert_uint_eq(mq_ld32(good + at), 3); /* group, attempt,
							   * source */
		memcpy(b, good, len);
		mq_st32(b + at, 1000000);
		reseal(b, len);
		ck_assert_int_eq(dlq_intent_deliver(g_db, b, len, true, NULL),
				 MQLOG_ECORRUPT);
		/* One header fewer than there are: bytes left over. */
		memcpy(b, good, len);
		mq_st32(b + at, 2);
		reseal(b, len);
		ck_assert_int_eq(dlq_intent_deliver(g_db, b, len, true, NULL),
				 MQLOG_ECORRUPT);
		h_msg_has("malformed");
	}
	/* Trailing bytes after the headers. */
	memcpy(b, good, len - 8);
	memset(b + len - 8, 0, 4);
	reseal(b, len + 4);
	ck_assert_int_eq(dlq_intent_deliver(g_db, b, len + 4, true, NULL),
			 MQLOG_ECORRUPT);
	h_msg_has("malformed");

	ck_assert(!topic_exists(g_db, "t.retry"));
	/* The undamaged one still goes through. */
	ck_assert_int_eq(dlq_intent_deliver(g_db, good, len, true, &appended),
			 0);
	ck_assert(appended);
	ck_assert_uint_eq(count_recs(g_db, "t.retry", 0), 1);
	free(b);
	free(good);
	mqlog_reader_close(r);
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Completion                                                               */
/* ------------------------------------------------------------------------ */

static int no_change(struct group_snap *s, void *arg)
{
	(void)s;
	(void)arg;
	return 0;
}

/* Store @buf as the intent of group g for t's partition 0, offset @off. */
static void store_intent(uint64_t off, const uint8_t *buf, size_t len)
{
	int rc = index_group_update_intent(g_db->ix, "g", g_t->meta.id,
					   mqlog_topic_partitions(g_t),
					   no_change, NULL, 0, off, buf, len);
	ck_assert_msg(rc == 0, "store intent: %d %s", rc, mqlog_errmsg(NULL));
}

static size_t intents_left(void)
{
	struct intent_item *items;
	size_t n = 99;

	ck_assert_int_eq(index_intent_list(g_db->ix, "g", g_t->meta.id,
					   UINT32_MAX, &items, &n),
			 0);
	index_intents_free(items, n);
	return n;
}

/* An encoded intent for record @off of t/0 (kind @kind, to @dest). */
static uint8_t *intent_for(uint64_t off, int kind, const char *dest,
			   size_t *len)
{
	mqlog_reader *r;
	mqlog_record rec;
	struct dlq_copy cp;
	uint8_t *buf = NULL;

	ck_assert_int_eq(mqlog_reader_open(g_t, 0, &r), 0);
	rec = read_at(r, off);
	cp = copy_of(&rec, kind, dest);
	cp.create_partitions = 1;
	ck_assert_int_eq(dlq_intent_encode(&cp, &buf, len), 0);
	mqlog_reader_close(r);
	return buf;
}

START_TEST(test_complete)
{
	/* dlq_complete delivers each pending intent once and deletes it;
	 * one that cannot be delivered stops the run with its error and
	 * stays, those before it being done and counted. */
	uint8_t *a, *bad;
	size_t alen, blen;
	uint64_t done = 99;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "a");
	h_append1(g_t, 0, "b");
	a = intent_for(0, DLQ_KIND_RETRY, "t.retry", &alen);
	bad = intent_for(1, DLQ_KIND_REPLAY, "nowhere", &blen);

	ck_assert_int_eq(dlq_complete(g_db, "g", g_t->meta.id, 0, &done), 0);
	ck_assert_uint_eq(done, 0);
	store_intent(0, a, alen);
	/* Already pending: refused, the first one kept. */
	ck_assert_int_eq(index_group_update_intent(g_db->ix, "g", g_t->meta.id,
						   1, no_change, NULL, 0, 0,
						   bad, blen),
			 MQLOG_EEXIST);
	store_intent(1, bad, blen);
	ck_assert_uint_eq(intents_left(), 2);

	ck_assert_int_eq(dlq_complete(g_db, "g", g_t->meta.id, 0, &done),
			 MQLOG_ENOENT);
	h_msg_has("nowhere");
	ck_assert_uint_eq(done, 1);
	ck_assert_uint_eq(intents_left(), 1);
	ck_assert_uint_eq(count_recs(g_db, "t.retry", 0), 1);

	/* Once the destination exists, the rest completes. */
	{
		mqlog_topic_config c = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);
		h_create(g_db, "nowhere", &c);
	}
	ck_assert_int_eq(
		dlq_complete(g_db, "g", g_t->meta.id, UINT32_MAX, &done), 0);
	ck_assert_uint_eq(done, 1);
	ck_assert_uint_eq(intents_left(), 0);
	ck_assert_uint_eq(count_recs(g_db, "nowhere", 0), 1);
	ck_assert_uint_eq(count_recs(g_db, "t.retry", 0), 1);
	free(a);
	free(bad);
	teardown_topic();
}
END_TEST

START_TEST(test_pending_intent_retried)
{
	/* An intent a member finds on claim but cannot complete does not
	 * stop it: it reads on, and later polls (and a nack) try the intent
	 * again until it goes through, exactly once, counted as recovered. */
	mqlog_consumer *c;
	mqlog_consumer_stats st;
	mqlog_record recs[8];
	uint8_t *bad;
	size_t blen, n = 0, total = 0;
	double t0;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "a");
	h_append1(g_t, 0, "b");
	bad = intent_for(0, DLQ_KIND_REPLAY, "later", &blen);
	store_intent(0, bad, blen);

	c = h_open_group(g_t, "g", HB_MS, LEASE_MS);
	t0 = h_mono_ms();
	while (total < 2 && h_mono_ms() - t0 < 10000) {
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 50, &n), 0);
		total += n;
	}
	ck_assert_uint_eq(total, 2);
	/* Several heartbeats' worth of polls: tried, still failing. */
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 4 * HB_MS, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(intents_left(), 1);
	ck_assert_int_eq(mqlog_consumer_stats_get(c, &st), 0);
	ck_assert_uint_eq(st.recovered, 0);

	/* A nack tries it first, and still goes through itself. */
	h_append1(g_t, 0, "c");
	n = 0;
	t0 = h_mono_ms();
	while (n == 0 && h_mono_ms() - t0 < 10000)
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 50, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(recs[0].offset, 2);
	ck_assert_int_eq(mqlog_consumer_nack(c, &recs[0], 0, NULL), 0);
	ck_assert_uint_eq(count_recs(g_db, "t.retry", 0), 1);
	ck_assert_uint_eq(intents_left(), 1);
	/* The heartbeat now renews the retry member too. */
	ck_assert_int_eq(mqlog_consumer_heartbeat(c), 0);

	{
		mqlog_topic_config cfg = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);
		h_create(g_db, "later", &cfg);
	}
	t0 = h_mono_ms();
	while (intents_left() && h_mono_ms() - t0 < 10000)
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, HB_MS, &n), 0);
	ck_assert_uint_eq(intents_left(), 0);
	ck_assert_uint_eq(count_recs(g_db, "later", 0), 1);
	ck_assert_int_eq(mqlog_consumer_stats_get(c, &st), 0);
	ck_assert_uint_eq(st.recovered, 1);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 3 * HB_MS, &n), 0);
	ck_assert_uint_eq(count_recs(g_db, "later", 0), 1);
	mqlog_consumer_close(c);
	free(bad);
	teardown_topic();
}
END_TEST

START_TEST(test_read_only)
{
	/* Opened read-only, nothing an intent needs can be written, and each
	 * step says so with MQLOG_ERDONLY: creating the destination,
	 * appending the copy, deleting a completed intent (which stays), and
	 * scheduling.  Nothing changes on disk. */
	mqlog_options opts;
	mqlog_msg m = h_msg("m", MQLOG_TIMESTAMP_NOW);
	uint8_t *to_retry, *to_t;
	size_t rlen, tlen;
	uint64_t done = 99;
	bool appended = true;
	mqlog_topic_config cfg = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "x");
	h_create(g_db, "t.dlq", &cfg);
	to_retry = intent_for(0, DLQ_KIND_RETRY, "t.retry", &rlen);
	to_t = intent_for(0, DLQ_KIND_REPLAY, "t", &tlen);
	/* An intent whose copy is already in t.dlq: complete but for its
	 * deletion. */
	{
		uint8_t *dead;
		size_t dlen;
		dead = intent_for(0, DLQ_KIND_DEAD, "t.dlq", &dlen);
		ck_assert_int_eq(
			dlq_intent_deliver(g_db, dead, dlen, false, NULL), 0);
		store_intent(0, dead, dlen);
		free(dead);
	}
	teardown_topic();

	mqlog_options_init(&opts);
	opts.flags = MQLOG_OPEN_RDONLY;
	ck_assert_int_eq(mqlog_open(fx_dir, &opts, &g_db), 0);
	g_t = h_topic(g_db, "t");

	ck_assert_int_eq(dlq_intent_deliver(g_db, to_retry, rlen, true,
					    &appended),
			 MQLOG_ERDONLY);
	ck_assert(!appended);
	h_msg_has("create t.retry");
	ck_assert(!topic_exists(g_db, "t.retry"));

	ck_assert_int_eq(dlq_intent_deliver(g_db, to_t, tlen, false, &appended),
			 MQLOG_ERDONLY);
	ck_assert(!appended);
	h_msg_has("deliver to t partition 0");
	ck_assert_uint_eq(count_recs(g_db, "t", 0), 1);

	ck_assert_int_eq(dlq_complete(g_db, "g", g_t->meta.id, 0, &done),
			 MQLOG_ERDONLY);
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(intents_left(), 1);
	ck_assert_uint_eq(count_recs(g_db, "t.dlq", 0), 1);

	ck_assert_int_eq(mqlog_schedule(g_t, &m, 0, NULL), MQLOG_ERDONLY);
	h_msg_has("schedule on 't'");
	ck_assert(!topic_exists(g_db, "t.retry"));
	free(to_retry);
	free(to_t);
	teardown_topic();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Consumers: nack, schedule, replay, commits                               */
/* ------------------------------------------------------------------------ */

/* Poll @c until it returned @want records in all (into @recs). */
static size_t poll_n(mqlog_consumer *c, mqlog_record *recs, size_t want)
{
	size_t n = 0, total = 0;
	double t0 = h_mono_ms();

	while (total < want && h_mono_ms() - t0 < 10000) {
		ck_assert_int_eq(mqlog_consumer_poll(c, recs + total,
						     want - total, 50, &n),
				 0);
		total += n;
	}
	return total;
}

START_TEST(test_names_without_room)
{
	/* A topic whose name leaves no room for ".retry" cannot nack or
	 * schedule, and a retry or dead-letter topic cannot schedule: each
	 * is MQLOG_EINVAL with a message, nothing committed, no topic made.
	 * NULL arguments of schedule are refused too. */
	char longname[245];
	mqlog_topic_config cfg = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);
	mqlog_msg m = h_msg("m", MQLOG_TIMESTAMP_NOW);
	mqlog_topic *lt, *d;
	mqlog_consumer *c;
	mqlog_record rec;
	uint64_t committed = 5, off = 5;

	setup_topic(1, 5, 0);
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	h_create(g_db, longname, &cfg);
	lt = h_topic(g_db, longname);
	h_append1(lt, 0, "x");
	c = h_open_group(lt, "g", HB_MS, LEASE_MS);
	ck_assert_uint_eq(poll_n(c, &rec, 1), 1);
	ck_assert_int_eq(mqlog_consumer_nack(c, &rec, 0, NULL), MQLOG_EINVAL);
	h_msg_has("no room");
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &committed),
			 MQLOG_ENOENT);
	ck_assert_uint_eq(committed, 5);
	ck_assert_int_eq(mqlog_schedule(lt, &m, 0, &off), MQLOG_EINVAL);
	h_msg_has("not for a retry");
	ck_assert_uint_eq(off, 5);
	mqlog_consumer_close(c);

	h_create(g_db, "t.dlq", &cfg);
	d = h_topic(g_db, "t.dlq");
	ck_assert_int_eq(mqlog_schedule(d, &m, 0, NULL), MQLOG_EINVAL);
	h_msg_has("t.dlq");
	ck_assert(!topic_exists(g_db, "t.dlq.retry"));
	mqlog_topic_close(d);

	ck_assert_int_eq(mqlog_schedule(NULL, &m, 0, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_schedule(g_t, NULL, 0, NULL), MQLOG_EINVAL);
	m.header_count = 1;
	ck_assert_int_eq(mqlog_schedule(g_t, &m, 0, NULL), MQLOG_EINVAL);
	h_msg_has("NULL");
	ck_assert(!topic_exists(g_db, "t.retry"));
	ck_assert_uint_eq(count_recs(g_db, longname, 0), 1);
	mqlog_topic_close(lt);
	teardown_topic();
}
END_TEST

START_TEST(test_schedule_key_headers)
{
	/* A scheduled record with a key goes to the key's partition of
	 * <topic>.retry, with its own headers (mqlog.expires allowed)
	 * followed by mqlog.due, mqlog.attempt 0 and its origin topic. */
	mqlog_header hs[] = { hdr_of("app", "1"),
			      hdr_of(DLQ_H_EXPIRES, "99999999999999") };
	mqlog_msg m = h_msg("m", MQLOG_TIMESTAMP_NOW);
	uint32_t want = mqlog_partition_for_key("key", 3, 3);
	uint64_t off = 99;
	mqlog_topic *rt;
	mqlog_reader *r;
	mqlog_record rec;
	char b[64];

	setup_topic(3, 5, 0);
	m.key.data = "key";
	m.key.len = 3;
	m.headers = hs;
	m.header_count = 2;
	ck_assert_int_eq(mqlog_schedule(g_t, &m, 12345, &off), 0);
	ck_assert_uint_eq(off, 0);
	rt = h_topic(g_db, "t.retry");
	ck_assert_uint_eq(mqlog_topic_partitions(rt), 3);
	for (uint32_t p = 0; p < 3; p++)
		ck_assert_uint_eq(count_recs(g_db, "t.retry", p),
				  p == want ? 1 : 0);
	ck_assert_int_eq(mqlog_reader_open(rt, want, &r), 0);
	rec = read_at(r, 0);
	ck_assert_uint_eq(rec.header_count, 5);
	ck_assert_str_eq(hdr(&rec, "app", b, sizeof b), "1");
	ck_assert_str_eq(hdr(&rec, DLQ_H_EXPIRES, b, sizeof b),
			 "99999999999999");
	ck_assert_str_eq(hdr(&rec, DLQ_H_DUE, b, sizeof b), "12345");
	ck_assert_str_eq(hdr(&rec, DLQ_H_ATTEMPT, b, sizeof b), "0");
	ck_assert_str_eq(hdr(&rec, DLQ_H_OTOPIC, b, sizeof b), "t");
	mqlog_reader_close(r);
	mqlog_topic_close(rt);
	teardown_topic();
}
END_TEST

START_TEST(test_replay_without_origin)
{
	/* Dead letters without origin headers are replayed to the topic
	 * named, in their key's partition, or partition 0 without a key;
	 * one whose origin topic no longer exists goes to the topic named,
	 * in its origin partition.  Bad arguments are refused and replay
	 * nothing. */
	mqlog_topic_config cfg = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);
	mqlog_header gone[] = { hdr_of(DLQ_H_OTOPIC, "gone"),
				hdr_of(DLQ_H_OPART, "2") };
	uint32_t kp = mqlog_partition_for_key("kk", 2, 3);
	mqlog_topic *d;
	uint64_t n = 99;
	struct h_recs rs = { 0 };

	setup_topic(3, 1, 0);
	h_create(g_db, "t.dlq", &cfg);
	d = h_topic(g_db, "t.dlq");
	append_h(d, 0, "kk", "keyed", NULL, 0);
	append_h(d, 0, NULL, "nokey", NULL, 0);
	append_h(d, 0, "kk", "orphan", gone, 2);

	ck_assert_int_eq(mqlog_dlq_replay(NULL, "t", NULL, 0, &n),
			 MQLOG_EINVAL);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mqlog_dlq_replay(g_db, NULL, NULL, 0, NULL),
			 MQLOG_EINVAL);
	n = 99;
	ck_assert_int_eq(mqlog_dlq_replay(g_db, "t", "bad/group", 0, &n),
			 MQLOG_EINVAL);
	ck_assert_uint_eq(n, 0);
	for (uint32_t p = 0; p < 3; p++)
		ck_assert_uint_eq(count_recs(g_db, "t", p), 0);

	ck_assert_int_eq(mqlog_dlq_replay(g_db, "t", "r", 0, &n), 0);
	ck_assert_uint_eq(n, 3);
	h_read_all(g_t, kp, &rs);
	ck_assert_uint_ge(rs.n, 1);
	ck_assert_str_eq(rs.r[0].val, "keyed");
	h_recs_free(&rs);
	h_read_all(g_t, 0, &rs);
	ck_assert_uint_eq(rs.n, kp == 0 ? 2 : 1);
	ck_assert_str_eq(rs.r[rs.n - 1].val, "nokey");
	h_recs_free(&rs);
	h_read_all(g_t, 2, &rs);
	ck_assert_uint_eq(rs.n, kp == 2 ? 2 : 1);
	ck_assert_str_eq(rs.r[rs.n - 1].val, "orphan");
	h_recs_free(&rs);
	/* Replayed once: a second run of the same group finds nothing. */
	ck_assert_int_eq(mqlog_dlq_replay(g_db, "t", "r", 0, &n), 0);
	ck_assert_uint_eq(n, 0);
	mqlog_topic_close(d);
	teardown_topic();
}
END_TEST

START_TEST(test_auto_commit_interval)
{
	/* In AFTER mode with an interval, polls within it commit nothing;
	 * an explicit commit writes the position at once. */
	mqlog_consumer_options o = h_group_opts("g", HB_MS, LEASE_MS);
	mqlog_consumer *c;
	mqlog_record recs[4];
	uint64_t off = 99;
	size_t n = 0;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "a");
	h_append1(g_t, 0, "b");
	o.auto_commit_interval_ms = 600000;
	ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c), 0);
	ck_assert_uint_eq(poll_n(c, recs, 2), 2);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 4, 0, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), MQLOG_ENOENT);
	ck_assert_uint_eq(off, 99);
	ck_assert_int_eq(mqlog_consumer_commit(c), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 2);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

struct events {
	int lost;     /* LOST reports */
	int assigned; /* ASSIGNED reports */
};

static void on_rebalance(void *arg, mqlog_consumer *c, int event,
			 const uint32_t *parts, size_t count)
{
	struct events *e = arg;

	(void)c;
	(void)parts;
	(void)count;
	if (event == MQLOG_REBALANCE_LOST)
		e->lost++;
	else if (event == MQLOG_REBALANCE_ASSIGNED)
		e->assigned++;
}

START_TEST(test_forced_reset)
{
	/* A member removed by a forced reset cannot nack what it read
	 * (MQLOG_ESTALE, nothing copied); its next poll's commit learns it:
	 * its partitions are reported lost, it joins again and reads from
	 * the reset offset. */
	mqlog_consumer_options o = h_group_opts("g", HB_MS, LEASE_MS);
	struct events ev = { 0, 0 };
	mqlog_consumer *c;
	mqlog_record recs[4];
	uint64_t off = 0;

	setup_topic(1, 5, 0);
	h_append1(g_t, 0, "a");
	h_append1(g_t, 0, "b");
	o.on_rebalance = on_rebalance;
	o.rebalance_arg = &ev;
	o.heartbeat_ms = 1000; /* the poll, not the heartbeat, finds out */
	o.lease_ms = 10000;
	ck_assert_int_eq(mqlog_consumer_open(g_t, &o, &c), 0);
	ck_assert_uint_eq(poll_n(c, recs, 2), 2);
	ck_assert_int_eq(ev.assigned, 1);
	ck_assert_int_eq(mqlog_group_reset_offsets(g_db, "g", "t",
						   MQLOG_OFFSET_EARLIEST,
						   MQLOG_RESET_FORCE),
			 0);
	ck_assert_int_eq(mqlog_consumer_nack(c, &recs[1], 0, NULL),
			 MQLOG_ESTALE);
	H_ASSERT_MSG(NULL);
	ck_assert_uint_eq(count_recs(g_db, "t.retry", 0), 0);

	ck_assert_uint_eq(poll_n(c, recs, 2), 2);
	ck_assert_int_eq(ev.lost, 1);
	ck_assert_int_eq(ev.assigned, 2);
	ck_assert_uint_eq(recs[0].offset, 0);
	ck_assert_uint_eq(recs[1].offset, 1);
	ck_assert_int_eq(mqlog_consumer_commit(c), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 2);
	mqlog_consumer_close(c);
	teardown_topic();
}
END_TEST

static Suite *intents_suite(void)
{
	Suite *s = suite_create("intents");
	TCase *tc = tcase_create("intents");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_meta_malformed);
	tcase_add_test(tc, test_malformed_due_delivered);
	tcase_add_test(tc, test_meta_many_headers);
	tcase_add_test(tc, test_meta_headers_undecodable);
	tcase_add_test(tc, test_intent_roundtrip);
	tcase_add_test(tc, test_intent_replay_and_nulls);
	tcase_add_test(tc, test_intent_hint_past_end);
	tcase_add_test(tc, test_intent_damaged);
	tcase_add_test(tc, test_complete);
	tcase_add_test(tc, test_pending_intent_retried);
	tcase_add_test(tc, test_read_only);
	tcase_add_test(tc, test_names_without_room);
	tcase_add_test(tc, test_schedule_key_headers);
	tcase_add_test(tc, test_replay_without_origin);
	tcase_add_test(tc, test_auto_commit_interval);
	tcase_add_test(tc, test_forced_reset);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(intents_suite)
