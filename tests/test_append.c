/*
 * test_append.c - appending batches: every field round-trips, offsets are
 * dense, segments roll and are named by their base offsets, appends
 * continue after a reopen, partitions are independent, bad batches change
 * nothing, and concurrent appenders get dense offsets.
 */
#include <pthread.h>
#include <xxhash.h>

#include "helpers.h"

static const char *dbdir(void)
{
	return fx_dir;
}

/* ------------------------------------------------------------------------ */

/* Keys, values, headers and timestamps (explicit and NOW) come back exactly
 * as appended, with null and empty kept apart. */
START_TEST(test_roundtrip_fields)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	mqlog_msg m[5];
	mqlog_header h1[1], h3[3], out[4];
	static const unsigned char bkey[4] = { 0, 1, 2, 0xff };
	static unsigned char big[10000], zeros[100];
	uint64_t base = 77;
	int64_t before, after;

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 31 + 7);
	memset(zeros, 0, sizeof zeros);
	zeros[50] = 9;

	h1[0].key = (mqlog_bytes){ "h1", 2 };
	h1[0].value = (mqlog_bytes){ "x", 1 };
	h3[0].key = (mqlog_bytes){ "a", 1 };
	h3[0].value = (mqlog_bytes){ "1", 1 };
	h3[1].key = (mqlog_bytes){ "b", 1 };
	h3[1].value = (mqlog_bytes){ NULL, 0 };
	h3[2].key = (mqlog_bytes){ "", 0 };
	h3[2].value = (mqlog_bytes){ "", 0 };

	memset(m, 0, sizeof m);
	m[0].value = (mqlog_bytes){ "v0", 2 };
	m[0].timestamp = 1000;
	m[1].key = (mqlog_bytes){ "", 0 };
	m[1].value = (mqlog_bytes){ "", 0 };
	m[1].headers = h1;
	m[1].header_count = 1;
	m[1].timestamp = 2000;
	m[2].key = (mqlog_bytes){ bkey, sizeof bkey };
	m[2].value = (mqlog_bytes){ NULL, 0 };
	m[2].headers = h3;
	m[2].header_count = 3;
	m[2].timestamp = 1500;
	m[3].key = (mqlog_bytes){ "k3", 2 };
	m[3].value = (mqlog_bytes){ big, sizeof big };
	m[3].timestamp = MQLOG_TIMESTAMP_NOW;
	m[4].key = (mqlog_bytes){ "k4", 2 };
	m[4].value = (mqlog_bytes){ zeros, sizeof zeros };
	m[4].timestamp = 0;

	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	before = h_wall_ms();
	ck_assert_int_eq(mqlog_append(t, 0, m, 5, MQLOG_SYNC_DEFAULT, &base),
			 0);
	after = h_wall_ms();
	ck_assert_uint_eq(base, 0);
	/* A NULL base_offset pointer is allowed. */
	ck_assert_int_eq(mqlog_append(t, 0, m, 1, MQLOG_SYNC_DEFAULT, NULL), 0);

	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);

	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 0);
	ck_assert_uint_eq(rec.partition, 0);
	ck_assert_int_eq(rec.timestamp, 1000);
	ck_assert_ptr_null(rec.key.data);
	ck_assert_uint_eq(rec.value.len, 2);
	ck_assert_mem_eq(rec.value.data, "v0", 2);
	ck_assert_uint_eq(rec.header_count, 0);
	ck_assert_int_eq(mqlog_record_headers(&rec, out, 4), 0);

	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 1);
	ck_assert_int_eq(rec.timestamp, 2000);
	ck_assert_ptr_nonnull(rec.key.data);
	ck_assert_uint_eq(rec.key.len, 0);
	ck_assert_ptr_nonnull(rec.value.data);
	ck_assert_uint_eq(rec.value.len, 0);
	ck_assert_uint_eq(rec.header_count, 1);
	ck_assert_int_eq(mqlog_record_headers(&rec, out, 4), 1);
	ck_assert_uint_eq(out[0].key.len, 2);
	ck_assert_mem_eq(out[0].key.data, "h1", 2);
	ck_assert_uint_eq(out[0].value.len, 1);
	ck_assert_mem_eq(out[0].value.data, "x", 1);

	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 2);
	ck_assert_int_eq(rec.timestamp, 1500);
	ck_assert_uint_eq(rec.key.len, 4);
	ck_assert_mem_eq(rec.key.data, bkey, 4);
	ck_assert_ptr_null(rec.value.data);
	ck_assert_uint_eq(rec.header_count, 3);
	/* Decoding fewer than there are returns min(count, max). */
	ck_assert_int_eq(mqlog_record_headers(&rec, out, 1), 1);
	ck_assert_mem_eq(out[0].key.data, "a", 1);
	ck_assert_int_eq(mqlog_record_headers(&rec, out, 0), 0);
	ck_assert_int_eq(mqlog_record_headers(&rec, out, 4), 3);
	ck_assert_uint_eq(out[0].key.len, 1);
	ck_assert_mem_eq(out[0].key.data, "a", 1);
	ck_assert_uint_eq(out[0].value.len, 1);
	ck_assert_mem_eq(out[0].value.data, "1", 1);
	ck_assert_uint_eq(out[1].key.len, 1);
	ck_assert_mem_eq(out[1].key.data, "b", 1);
	ck_assert_ptr_null(out[1].value.data);
	ck_assert_ptr_nonnull(out[2].key.data);
	ck_assert_uint_eq(out[2].key.len, 0);
	ck_assert_ptr_nonnull(out[2].value.data);
	ck_assert_uint_eq(out[2].value.len, 0);

	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 3);
	ck_assert_int_ge(rec.timestamp, before);
	ck_assert_int_le(rec.timestamp, after);
	ck_assert_uint_eq(rec.key.len, 2);
	ck_assert_mem_eq(rec.key.data, "k3", 2);
	ck_assert_uint_eq(rec.value.len, sizeof big);
	ck_assert(memcmp(rec.value.data, big, sizeof big) == 0);

	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 4);
	ck_assert_int_eq(rec.timestamp, 0);
	ck_assert_uint_eq(rec.value.len, sizeof zeros);
	ck_assert(memcmp(rec.value.data, zeros, sizeof zeros) == 0);

	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 5);
	ck_assert_mem_eq(rec.value.data, "v0", 2);

	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 6);
	mqlog_reader_close(r);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 6);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Offsets are dense from 0 across many batches of different sizes, and
 * each append reports the base offset of its batch. */
START_TEST(test_dense_offsets)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	struct h_recs rs = { 0 };
	uint64_t total = 0;
	char vals[8][32];
	const char *vp[8];

	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	for (int b = 0; b < 120; b++) {
		size_t n = 1 + (size_t)(b * 7) % 5;
		for (size_t i = 0; i < n; i++) {
			snprintf(vals[i], sizeof vals[i], "r%" PRIu64,
				 total + i);
			vp[i] = vals[i];
		}
		ck_assert_uint_eq(h_append_strs(t, 0, vp, n, 1000 + b,
						MQLOG_SYNC_DEFAULT),
				  total);
		total += n;
		ck_assert_uint_eq(h_info(t, 0).end_offset, total);
	}
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, total);
	for (size_t i = 0; i < rs.n; i++) {
		char want[32];
		snprintf(want, sizeof want, "r%zu", i);
		ck_assert_uint_eq(rs.r[i].off, i);
		ck_assert_str_eq(rs.r[i].val, want);
	}
	h_recs_free(&rs);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Check the segment files of a partition against partition_info: names are
 * the base offsets of their first batch, segments are contiguous, and the
 * counts and byte totals match.  Returns the number of segments. */
static size_t check_segments(mqlog_topic *t, const char *topic, uint32_t part)
{
	uint64_t bases[256], next = 0, data_total = 0;
	size_t n = h_seg_list(dbdir(), topic, part, bases, 256);
	struct mqlog_partition_info info = h_info(t, part);
	ck_assert_uint_le(n, 256);
	ck_assert_uint_eq(info.segments, n);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_eq(bases[0], info.start_offset);
	ck_assert_uint_eq(info.active_base, bases[n - 1]);
	for (size_t i = 0; i < n; i++) {
		struct h_batch b[512];
		uint64_t end;
		size_t nb = h_walk(h_seg_path(dbdir(), topic, part, bases[i]),
				   b, 512, &end);
		ck_assert_uint_le(nb, 512);
		ck_assert_uint_eq(bases[i], next);
		if (i + 1 < n)
			ck_assert_msg(nb > 0, "sealed segment %zu is empty", i);
		for (size_t j = 0; j < nb; j++) {
			ck_assert_uint_eq(b[j].base, next);
			next += b[j].count;
		}
		data_total += end;
	}
	ck_assert_uint_eq(next, info.end_offset);
	ck_assert_uint_eq(info.bytes, data_total);
	return n;
}

/* With segment_bytes 4096 the log rolls into several segments named by
 * their base offsets, and reading crosses segment boundaries. */
START_TEST(test_rolls)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	struct h_recs rs = { 0 };
	uint64_t total = 0;
	char vals[3][80];
	const char *vp[3];
	size_t nseg;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int b = 0; b < 150; b++) {
		size_t n = 1 + (size_t)b % 3;
		for (size_t i = 0; i < n; i++) {
			snprintf(vals[i], sizeof vals[i],
				 "%06" PRIu64
				 "-padding-padding-padding-padding-"
				 "padding-padding",
				 total + i);
			vp[i] = vals[i];
		}
		ck_assert_uint_eq(h_append_strs(t, 0, vp, n, 5000,
						MQLOG_SYNC_DEFAULT),
				  total);
		total += n;
	}
	nseg = check_segments(t, "t", 0);
	ck_assert_uint_ge(nseg, 5);
	ck_assert_str_eq(h_seg_path(dbdir(), "t", 0, 0) + strlen(dbdir()),
			 "/topics/t/0/00000000000000000000.seg");

	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, total);
	for (size_t i = 0; i < rs.n; i++) {
		ck_assert_uint_eq(rs.r[i].off, i);
		ck_assert_uint_eq(strtoull(rs.r[i].val, NULL, 10), i);
	}
	h_recs_free(&rs);

	/* Reading from the middle of every segment works too. */
	{
		uint64_t bases[256];
		size_t n = h_seg_list(dbdir(), "t", 0, bases, 256);
		for (size_t i = 0; i < n; i++) {
			h_read_from(t, 0, bases[i], &rs);
			ck_assert_uint_eq(rs.n, total - bases[i]);
			ck_assert_uint_eq(rs.r[0].off, bases[i]);
			h_recs_free(&rs);
		}
	}
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* After closing and reopening the directory, offsets continue where they
 * stopped and partition_info reports the same state. */
START_TEST(test_reopen_continue)
{
	mqlog_topic_config c = h_cfg(2, 4096, MQLOG_SYNC_NONE);
	struct h_recs rs = { 0 };
	uint64_t total = 0;
	char val[120];

	for (int round = 0; round < 4; round++) {
		mqlog *db = h_open(dbdir());
		mqlog_topic *t;
		struct mqlog_partition_info before;
		if (round == 0)
			h_create(db, "t", &c);
		t = h_topic(db, "t");
		before = h_info(t, 0);
		ck_assert_uint_eq(before.end_offset, total);
		if (round > 0)
			check_segments(t, "t", 0);
		for (int i = 0; i < 25; i++) {
			snprintf(val, sizeof val,
				 "%06" PRIu64
				 " round %d ..........................."
				 "......................................",
				 total, round);
			ck_assert_uint_eq(h_append1(t, 0, val), total);
			total++;
		}
		before = h_info(t, 0);
		mqlog_topic_close(t);
		mqlog_close(db);

		db = h_open(dbdir());
		t = h_topic(db, "t");
		{
			struct mqlog_partition_info after = h_info(t, 0);
			ck_assert_uint_eq(after.end_offset, before.end_offset);
			ck_assert_uint_eq(after.start_offset,
					  before.start_offset);
			ck_assert_uint_eq(after.segments, before.segments);
			ck_assert_uint_eq(after.bytes, before.bytes);
			ck_assert_uint_eq(after.active_base,
					  before.active_base);
			ck_assert_int_eq(after.failed, 0);
		}
		ck_assert_uint_eq(h_info(t, 1).end_offset, 0);
		mqlog_topic_close(t);
		mqlog_close(db);
	}

	{
		mqlog *db = h_open(dbdir());
		mqlog_topic *t = h_topic(db, "t");
		ck_assert_uint_ge(check_segments(t, "t", 0), 3);
		h_read_all(t, 0, &rs);
		ck_assert_uint_eq(rs.n, total);
		for (size_t i = 0; i < rs.n; i++) {
			ck_assert_uint_eq(rs.r[i].off, i);
			ck_assert_uint_eq(strtoull(rs.r[i].val, NULL, 10), i);
		}
		h_recs_free(&rs);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

/* partition_info starts empty and tracks end, segments and bytes exactly. */
START_TEST(test_partition_info)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	struct mqlog_partition_info info;
	char val[1000];

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	info = h_info(t, 0);
	ck_assert_uint_eq(info.start_offset, 0);
	ck_assert_uint_eq(info.end_offset, 0);
	ck_assert_uint_eq(info.bytes, 0);
	ck_assert_uint_eq(info.active_base, 0);
	ck_assert_uint_le(info.segments, 1);
	ck_assert_int_eq(info.failed, 0);

	memset(val, 'q', sizeof val - 1);
	val[sizeof val - 1] = '\0';
	for (int i = 0; i < 20; i++) {
		h_append1(t, 0, val);
		info = h_info(t, 0);
		ck_assert_uint_eq(info.end_offset, (uint64_t)i + 1);
		check_segments(t, "t", 0);
	}
	ck_assert_uint_ge(info.segments, 4);
	ck_assert_uint_gt(info.active_base, 0);
	ck_assert_uint_ge(info.bytes, 20 * 1000);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Partitions of one topic have independent offsets and contents. */
START_TEST(test_partitions_independent)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(4, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	char val[64];
	uint64_t next[4] = { 0 };

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < 100; i++)
		for (uint32_t p = 0; p < 4; p++)
			if ((uint64_t)i < (p + 1) * 10u) {
				snprintf(val, sizeof val, "p%u-%d", p, i);
				ck_assert_uint_eq(h_append1(t, p, val),
						  next[p]);
				next[p]++;
			}
	for (uint32_t p = 0; p < 4; p++) {
		struct h_recs rs = { 0 };
		ck_assert_uint_eq(h_info(t, p).end_offset, (p + 1) * 10u);
		h_read_all(t, p, &rs);
		ck_assert_uint_eq(rs.n, (p + 1) * 10u);
		for (size_t i = 0; i < rs.n; i++) {
			snprintf(val, sizeof val, "p%u-%zu", p, i);
			ck_assert_uint_eq(rs.r[i].off, i);
			ck_assert_uint_eq(rs.r[i].partition, p);
			ck_assert_str_eq(rs.r[i].val, val);
		}
		h_recs_free(&rs);
		check_segments(t, "t", p);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* The default partitioner is XXH3-64 (seed 0) modulo the partition count:
 * stable, in range, and spreads keys over every partition. */
START_TEST(test_partition_for_key)
{
	unsigned hits[8] = { 0 };
	char key[32];
	for (int i = 0; i < 1000; i++) {
		size_t len = (size_t)snprintf(key, sizeof key, "key-%d", i);
		for (uint32_t parts = 1; parts <= 17; parts++) {
			uint32_t p = mqlog_partition_for_key(key, len, parts);
			ck_assert_uint_lt(p, parts);
			ck_assert_uint_eq(p, mqlog_partition_for_key(key, len,
								     parts));
			ck_assert_uint_eq(
				p, (uint32_t)(XXH3_64bits(key, len) % parts));
		}
		hits[mqlog_partition_for_key(key, len, 8)]++;
	}
	for (int p = 0; p < 8; p++)
		ck_assert_uint_gt(hits[p], 60);
	ck_assert_uint_eq(mqlog_partition_for_key("", 0, 1), 0);
	ck_assert_uint_eq(mqlog_partition_for_key("", 0, 100000),
			  (uint32_t)(XXH3_64bits("", 0) % 100000));
	ck_assert_uint_eq(
		mqlog_partition_for_key("k", 1, MQLOG_MAX_PARTITIONS),
		(uint32_t)(XXH3_64bits("k", 1) % MQLOG_MAX_PARTITIONS));
}
END_TEST

/* A record over max_record_bytes fails the whole batch with MQLOG_ETOOBIG
 * naming the record, and nothing is written. */
START_TEST(test_etoobig)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	struct mqlog_partition_info before, after;
	static char big[2000], fits[900];
	mqlog_msg m[3];
	uint64_t seg_before, base = 4242;
	struct h_recs rs = { 0 };
	int rc;

	c.max_record_bytes = 1000;
	memset(big, 'B', sizeof big);
	memset(fits, 'F', sizeof fits);
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	h_append1(t, 0, "one");
	h_append1(t, 0, "two");
	before = h_info(t, 0);
	seg_before = h_size(h_seg_path(dbdir(), "t", 0, 0));

	m[0] = h_msg("ok", 1);
	m[1] = h_msg("", 2);
	m[1].value = (mqlog_bytes){ big, sizeof big };
	m[2] = h_msg("ok too", 3);
	rc = mqlog_append(t, 0, m, 3, MQLOG_SYNC_DEFAULT, &base);
	ck_assert_int_eq(rc, MQLOG_ETOOBIG);
	H_ASSERT_MSG(db);
	ck_assert_msg(h_contains(mqlog_errmsg(db), "1"),
		      "message does not name record 1: %s", mqlog_errmsg(db));
	after = h_info(t, 0);
	ck_assert_uint_eq(after.end_offset, before.end_offset);
	ck_assert_uint_eq(after.bytes, before.bytes);
	ck_assert_uint_eq(h_size(h_seg_path(dbdir(), "t", 0, 0)), seg_before);

	/* A single oversized record, too. */
	rc = mqlog_append(t, 0, &m[1], 1, MQLOG_SYNC_DEFAULT, NULL);
	ck_assert_int_eq(rc, MQLOG_ETOOBIG);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 2);

	/* A record comfortably under the limit is accepted, and offsets
	 * continue densely. */
	m[1].value = (mqlog_bytes){ fits, sizeof fits };
	ck_assert_int_eq(mqlog_append(t, 0, m, 3, MQLOG_SYNC_DEFAULT, &base),
			 0);
	ck_assert_uint_eq(base, 2);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 5);
	ck_assert_str_eq(rs.r[0].val, "one");
	ck_assert_str_eq(rs.r[1].val, "two");
	ck_assert_str_eq(rs.r[2].val, "ok");
	ck_assert_uint_eq(rs.r[3].vlen, sizeof fits);
	ck_assert_str_eq(rs.r[4].val, "ok too");
	h_recs_free(&rs);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* count 0 and a partition out of range are MQLOG_EINVAL and change
 * nothing. */
START_TEST(test_einval)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(2, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_msg m = h_msg("x", 1);

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	h_append1(t, 0, "first");
	ck_assert_int_eq(mqlog_append(t, 0, &m, 0, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EINVAL);
	H_ASSERT_MSG(db);
	ck_assert_int_eq(mqlog_append(t, 2, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EINVAL);
	H_ASSERT_MSG(db);
	ck_assert_msg(h_contains(mqlog_errmsg(db), "partition"), "%s",
		      mqlog_errmsg(db));
	ck_assert_int_eq(mqlog_append(t, UINT32_MAX, &m, 1, MQLOG_SYNC_DEFAULT,
				      NULL),
			 MQLOG_EINVAL);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 1);
	ck_assert_uint_eq(h_info(t, 1).end_offset, 0);
	ck_assert_uint_eq(h_append1(t, 0, "second"), 1);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A batch larger than segment_bytes is still appended, alone in its own
 * segment, and the log continues normally after it. */
START_TEST(test_batch_larger_than_segment)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	static char big[10000], mid[5000];
	mqlog_msg m[3];
	uint64_t base_big = 0, base_three = 0;
	struct h_recs rs = { 0 };

	memset(big, 'G', sizeof big);
	memset(mid, 'M', sizeof mid);
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < 5; i++)
		h_append1(t, 0, "small before");
	m[0] = h_msg("", 1);
	m[0].value = (mqlog_bytes){ big, sizeof big };
	ck_assert_int_eq(
		mqlog_append(t, 0, m, 1, MQLOG_SYNC_DEFAULT, &base_big), 0);
	ck_assert_uint_eq(base_big, 5);
	for (int i = 0; i < 3; i++)
		m[i] = (mqlog_msg){ .value = { mid, sizeof mid },
				    .timestamp = 2 };
	ck_assert_int_eq(
		mqlog_append(t, 0, m, 3, MQLOG_SYNC_DEFAULT, &base_three), 0);
	ck_assert_uint_eq(base_three, 6);
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(h_append1(t, 0, "small after"),
				  9u + (unsigned)i);

	check_segments(t, "t", 0);
	{
		struct h_batch b[8];
		uint64_t end;
		const char *p = h_seg_path(dbdir(), "t", 0, base_big);
		ck_assert_msg(h_exists(p),
			      "no segment starts at the big batch");
		ck_assert_uint_eq(h_walk(p, b, 8, &end), 1);
		ck_assert_uint_eq(b[0].count, 1);
		ck_assert_uint_gt(b[0].len, 10000);
		p = h_seg_path(dbdir(), "t", 0, base_three);
		ck_assert_msg(h_exists(p),
			      "no segment starts at the 3x5000 batch");
		ck_assert_uint_eq(h_walk(p, b, 8, &end), 1);
		ck_assert_uint_eq(b[0].count, 3);
	}
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 14);
	for (size_t i = 0; i < 14; i++)
		ck_assert_uint_eq(rs.r[i].off, i);
	ck_assert_str_eq(rs.r[4].val, "small before");
	ck_assert_uint_eq(rs.r[5].vlen, sizeof big);
	ck_assert(memcmp(rs.r[5].val, big, sizeof big) == 0);
	for (size_t i = 6; i < 9; i++) {
		ck_assert_uint_eq(rs.r[i].vlen, sizeof mid);
		ck_assert(memcmp(rs.r[i].val, mid, sizeof mid) == 0);
	}
	ck_assert_str_eq(rs.r[9].val, "small after");
	h_recs_free(&rs);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Concurrency                                                              */
/* ------------------------------------------------------------------------ */

#define CT_THREADS 4
#define CT_PER	   250

struct appender {
	mqlog_topic *t;		  /* shared topic handle */
	int id;			  /* thread number */
	uint64_t offsets[CT_PER]; /* offset returned for each append */
	int err;		  /* first error, 0 if none */
};

static void *append_thread(void *arg)
{
	struct appender *a = arg;
	char val[32];
	for (int i = 0; i < CT_PER; i++) {
		mqlog_msg m;
		int rc;
		snprintf(val, sizeof val, "T%d:%04d", a->id, i);
		m = h_msg(val, MQLOG_TIMESTAMP_NOW);
		rc = mqlog_append(a->t, 0, &m, 1, MQLOG_SYNC_DEFAULT,
				  &a->offsets[i]);
		if (rc != 0) {
			a->err = rc;
			break;
		}
	}
	return NULL;
}

/* Four threads appending one-record batches to one partition get dense,
 * distinct offsets, and each thread's records keep its order. */
START_TEST(test_concurrent_appends)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 8192, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	static struct appender a[CT_THREADS];
	pthread_t th[CT_THREADS];
	struct h_recs rs = { 0 };
	int next_seq[CT_THREADS] = { 0 };

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < CT_THREADS; i++) {
		a[i].t = t;
		a[i].id = i;
		a[i].err = 0;
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, append_thread, &a[i]), 0);
	}
	for (int i = 0; i < CT_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < CT_THREADS; i++)
		ck_assert_msg(a[i].err == 0, "thread %d: %s", i,
			      mqlog_errname(a[i].err));

	ck_assert_uint_eq(h_info(t, 0).end_offset, CT_THREADS * CT_PER);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, CT_THREADS * CT_PER);
	for (size_t i = 0; i < rs.n; i++) {
		int id, seq;
		ck_assert_uint_eq(rs.r[i].off, i);
		ck_assert_int_eq(sscanf(rs.r[i].val, "T%d:%d", &id, &seq), 2);
		ck_assert(id >= 0 && id < CT_THREADS);
		ck_assert_int_eq(seq, next_seq[id]);
		/* The offset the append reported is where the record is. */
		ck_assert_uint_eq(a[id].offsets[seq], i);
		next_seq[id]++;
	}
	for (int i = 0; i < CT_THREADS; i++)
		ck_assert_int_eq(next_seq[i], CT_PER);
	h_recs_free(&rs);
	check_segments(t, "t", 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static Suite *append_suite(void)
{
	Suite *s = suite_create("append");
	TCase *tc = tcase_create("append");
	TCase *cc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_roundtrip_fields);
	tcase_add_test(tc, test_dense_offsets);
	tcase_add_test(tc, test_rolls);
	tcase_add_test(tc, test_reopen_continue);
	tcase_add_test(tc, test_partition_info);
	tcase_add_test(tc, test_partitions_independent);
	tcase_add_test(tc, test_partition_for_key);
	tcase_add_test(tc, test_etoobig);
	tcase_add_test(tc, test_einval);
	tcase_add_test(tc, test_batch_larger_than_segment);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(cc, fx_setup, fx_teardown);
	tcase_set_timeout(cc, 30);
	tcase_add_test(cc, test_concurrent_appends);
	suite_add_tcase(s, cc);
	return s;
}

H_MAIN(append_suite)
