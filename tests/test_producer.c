/*
 * test_producer.c - producers: partitioners (XXH3, Kafka's murmur2, sticky,
 * explicit, custom), batching by records, bytes, linger and flush, headers
 * and timestamps, records over the limit, flush and close semantics, fatal
 * errors, routing by a header, and concurrency: threads sharing a producer,
 * producers in several processes, and a process killed while it holds a
 * partition's append lock.
 *
 * The 'unit' tcase is single-threaded (the background thread aside); the
 * 'concurrency' tcase holds the tests that the ThreadSanitizer run repeats.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "engine.h"
#include "helpers.h"

static const char *dbdir(void)
{
	return fx_dir;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static mqlog_producer *open_producer(mqlog_topic *t,
				     const mqlog_producer_options *o)
{
	mqlog_producer *p = NULL;
	int rc = mqlog_producer_open(t, o, &p);
	ck_assert_msg(rc == 0, "mqlog_producer_open = %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	ck_assert_ptr_nonnull(p);
	return p;
}

static mqlog_msg kv(const char *key, const char *val)
{
	mqlog_msg m;
	memset(&m, 0, sizeof m);
	if (key) {
		m.key.data = key;
		m.key.len = strlen(key);
	}
	m.value.data = val;
	m.value.len = strlen(val);
	m.timestamp = MQLOG_TIMESTAMP_NOW;
	return m;
}

/* Produce synchronously and assert success; returns the offset. */
static uint64_t produce_ok(mqlog_producer *p, const mqlog_msg *m, uint32_t want,
			   uint32_t *part)
{
	uint32_t pa = UINT32_MAX;
	uint64_t off = UINT64_MAX;
	int rc = mqlog_produce(p, m, want, &pa, &off);
	ck_assert_msg(rc == 0, "mqlog_produce = %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	if (part)
		*part = pa;
	return off;
}

/* Batch sizes of a partition, from a scan of its segments. */
struct batches {
	uint32_t count[4096]; /* records per batch, in log order */
	size_t n;	      /* batches */
};

static int count_batch(void *arg, const mqlog_batch_info *b)
{
	struct batches *bs = arg;
	if (bs->n < 4096)
		bs->count[bs->n] = b->record_count;
	bs->n++;
	return 0;
}

static void scan_batches(mqlog_topic *t, uint32_t part, struct batches *bs)
{
	mqlog_scan_ops ops = { count_batch, NULL };
	memset(bs, 0, sizeof *bs);
	ck_assert_int_eq(mqlog_scan_partition(t, part, &ops, bs), 0);
}

/* Delivery reports collected by a callback (records tagged 0..cap-1). */
struct dl {
	pthread_mutex_t mu;   /* guards the fields below */
	size_t cap;	      /* records expected at most */
	int *seen;	      /* times each tag was reported */
	int *rc;	      /* its outcome */
	uint32_t *part;	      /* its partition */
	uint64_t *off;	      /* its offset */
	size_t total;	      /* reports */
	size_t failed;	      /* reports with rc != 0 */
	int msgs_ok;	      /* every failure came with a message */
	pthread_t thread;     /* the thread of the last callback */
	mqlog_producer *prod; /* for the reentrancy test */
	int flush_rc;	      /* flush from inside the callback */
	int close_rc;	      /* close from inside the callback */
	int inner_rc;	      /* produce_async from inside the callback */
};

static void dl_init(struct dl *d, size_t cap)
{
	memset(d, 0, sizeof *d);
	pthread_mutex_init(&d->mu, NULL);
	d->cap = cap;
	d->seen = calloc(cap, sizeof *d->seen);
	d->rc = calloc(cap, sizeof *d->rc);
	d->part = calloc(cap, sizeof *d->part);
	d->off = calloc(cap, sizeof *d->off);
	d->msgs_ok = 1;
	ck_assert(d->seen && d->rc && d->part && d->off);
}

static void dl_free(struct dl *d)
{
	free(d->seen);
	free(d->rc);
	free(d->part);
	free(d->off);
	pthread_mutex_destroy(&d->mu);
}

static void on_delivery(void *arg, const mqlog_delivery *dv)
{
	struct dl *d = arg;
	size_t tag = (size_t)(uintptr_t)dv->opaque;

	pthread_mutex_lock(&d->mu);
	d->thread = pthread_self();
	d->total++;
	if (tag < d->cap) {
		d->seen[tag]++;
		d->rc[tag] = dv->rc;
		d->part[tag] = dv->partition;
		d->off[tag] = dv->offset;
	}
	if (dv->rc) {
		d->failed++;
		if (!dv->errmsg || !dv->errmsg[0])
			d->msgs_ok = 0;
	}
	pthread_mutex_unlock(&d->mu);
}

static void *tag(size_t i)
{
	return (void *)(uintptr_t)i;
}

/* ------------------------------------------------------------------------ */
/* Partitioners                                                             */
/* ------------------------------------------------------------------------ */

/* murmur2 gives the values of Kafka's UtilsTest.testMurmur2 and of
 * librdkafka's unittest_murmur2, and the Kafka partition is
 * toPositive(murmur2) % n. */
START_TEST(test_murmur2_vectors)
{
	static const struct {
		const char *key;
		int32_t java;
	} kafka[] = {
		{ "21", -973932308 },
		{ "foobar", -790332482 },
		{ "a-little-bit-long-string", -985981536 },
		{ "a-little-bit-longer-string", -1486304829 },
		{ "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
		  -58897971 },
		{ "abc", 479470107 },
	};
	static const struct {
		const char *key;
		uint32_t h;
	} rdkafka[] = {
		{ "kafka", 0xd067cf64u },
		{ "giberish123456789", 0x8f552b0cu },
		{ "1234", 0x9fc97b14u },
		{ "234", 0xe7c009cau },
		{ "34", 0x873930dau },
		{ "4", 0x5a4b5ca1u },
		{ "PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424f1cu },
		{ "reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62b377u },
		{ "eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4e09eu },
		{ "AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8b43fu },
		{ "", 0x106e08d9u },
	};

	for (size_t i = 0; i < sizeof kafka / sizeof kafka[0]; i++) {
		uint32_t h = mqlog_murmur2(kafka[i].key, strlen(kafka[i].key));
		ck_assert_msg(h == (uint32_t)kafka[i].java,
			      "murmur2(%s) = %d, Kafka says %d", kafka[i].key,
			      (int32_t)h, kafka[i].java);
	}
	for (size_t i = 0; i < sizeof rdkafka / sizeof rdkafka[0]; i++) {
		uint32_t h =
			mqlog_murmur2(rdkafka[i].key, strlen(rdkafka[i].key));
		ck_assert_msg(h == rdkafka[i].h,
			      "murmur2(%s) = 0x%08x, librdkafka says 0x%08x",
			      rdkafka[i].key, h, rdkafka[i].h);
	}
	/* A NULL key hashes like an empty one (librdkafka's last vector). */
	ck_assert_uint_eq(mqlog_murmur2(NULL, 0), 0x106e08d9u);
	/* toPositive(0xd067cf64) = 0x5067cf64 = 1348980580. */
	ck_assert_uint_eq(mqlog_partition_for_key_murmur2("kafka", 5, 10),
			  1348980580u % 10);
	ck_assert_uint_eq(mqlog_partition_for_key_murmur2("kafka", 5, 12),
			  1348980580u % 12);
	/* "21" is negative as a Java int: toPositive clears the sign bit. */
	ck_assert_uint_eq(mqlog_partition_for_key_murmur2("21", 2, 7),
			  ((uint32_t)-973932308 & 0x7fffffffu) % 7);
	for (uint32_t n = 1; n < 40; n++)
		ck_assert_uint_lt(mqlog_partition_for_key_murmur2("x", 1, n),
				  n);
}
END_TEST

/* Chi-square statistic of @counts against a uniform spread of @total. */
static double chi_square(const uint64_t *counts, uint32_t n, uint64_t total)
{
	double e = (double)total / n, x = 0;
	for (uint32_t i = 0; i < n; i++)
		x += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
	return x;
}

/* 200,000 distinct keys spread over 16 (and 7) partitions uniformly by
 * both hashes: the chi-square statistic stays under its 0.1 % critical
 * value (37.70 for 15 degrees of freedom, 22.46 for 6). */
START_TEST(test_key_distribution)
{
	const uint64_t total = 200000;
	uint64_t a[16] = { 0 }, b[16] = { 0 }, c[7] = { 0 }, d[7] = { 0 };
	char key[32];

	for (uint64_t i = 0; i < total; i++) {
		int n = snprintf(key, sizeof key, "user-%" PRIu64, i);
		a[mqlog_partition_for_key(key, (size_t)n, 16)]++;
		b[mqlog_partition_for_key_murmur2(key, (size_t)n, 16)]++;
		c[mqlog_partition_for_key(key, (size_t)n, 7)]++;
		d[mqlog_partition_for_key_murmur2(key, (size_t)n, 7)]++;
	}
	ck_assert_msg(chi_square(a, 16, total) < 37.70, "xxh3/16: chi2 %.2f",
		      chi_square(a, 16, total));
	ck_assert_msg(chi_square(b, 16, total) < 37.70, "murmur2/16: chi2 %.2f",
		      chi_square(b, 16, total));
	ck_assert_msg(chi_square(c, 7, total) < 22.46, "xxh3/7: chi2 %.2f",
		      chi_square(c, 7, total));
	ck_assert_msg(chi_square(d, 7, total) < 22.46, "murmur2/7: chi2 %.2f",
		      chi_square(d, 7, total));
}
END_TEST

/* The producer puts a keyed record where mqlog_partition_for_key() (or, as
 * configured, Kafka's murmur2) says, and an explicit partition wins. */
START_TEST(test_keyed_partitioning)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(5, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *px, *pm;
	mqlog_topic *t;
	char key[32];

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	mqlog_producer_options_init(&o);
	px = open_producer(t, &o);
	o.partitioner = MQLOG_PARTITIONER_MURMUR2;
	pm = open_producer(t, &o);
	for (int i = 0; i < 200; i++) {
		uint32_t part;
		snprintf(key, sizeof key, "key-%d", i);
		mqlog_msg m = kv(key, "v");
		produce_ok(px, &m, MQLOG_PARTITION_AUTO, &part);
		ck_assert_uint_eq(part,
				  mqlog_partition_for_key(key, strlen(key), 5));
		produce_ok(pm, &m, MQLOG_PARTITION_AUTO, &part);
		ck_assert_uint_eq(part, mqlog_partition_for_key_murmur2(
						key, strlen(key), 5));
		produce_ok(px, &m, 3, &part);
		ck_assert_uint_eq(part, 3);
	}
	/* An empty key is a key, not a null one. */
	{
		mqlog_msg m = kv("", "empty key");
		uint32_t part;
		produce_ok(px, &m, MQLOG_PARTITION_AUTO, &part);
		ck_assert_uint_eq(part, mqlog_partition_for_key("", 0, 5));
	}
	mqlog_producer_free(px);
	mqlog_producer_free(pm);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static int route_by_value_len(void *arg, const mqlog_msg *m,
			      uint32_t partitions)
{
	int *calls = arg;
	(*calls)++;
	if (m->value.len == 13)
		return MQLOG_EBUSY; /* an error passes through */
	if (m->value.len == 14)
		return (int)partitions; /* out of range */
	return (int)(m->value.len % partitions);
}

/* A custom partitioner decides for every record, null keys included; its
 * errors and out-of-range answers fail the call; bad explicit partitions
 * fail with MQLOG_EINVAL. */
START_TEST(test_custom_partitioner)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(4, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	uint32_t part;
	int calls = 0, rc;
	mqlog_msg m;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	mqlog_producer_options_init(&o);
	o.partitioner = MQLOG_PARTITIONER_CUSTOM;
	ck_assert_int_eq(mqlog_producer_open(t, &o, &p), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "partition_fn"));
	o.partition_fn = route_by_value_len;
	o.partition_arg = &calls;
	p = open_producer(t, &o);

	m = kv(NULL, "abcdef"); /* 6 % 4 */
	produce_ok(p, &m, MQLOG_PARTITION_AUTO, &part);
	ck_assert_uint_eq(part, 2);
	m = kv("k", "abcdefg"); /* 7 % 4 */
	produce_ok(p, &m, MQLOG_PARTITION_AUTO, &part);
	ck_assert_uint_eq(part, 3);
	ck_assert_int_eq(calls, 2);
	m = kv("k", "thirteen-long");
	ck_assert_int_eq(mqlog_produce(p, &m, MQLOG_PARTITION_AUTO, &part,
				       NULL),
			 MQLOG_EBUSY);
	ck_assert(h_contains(mqlog_errmsg(NULL), "partitioner"));
	m = kv("k", "fourteen-long!");
	ck_assert_int_eq(mqlog_produce(p, &m, MQLOG_PARTITION_AUTO, &part,
				       NULL),
			 MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "partition 4"));
	/* An explicit partition bypasses the partitioner. */
	m = kv("k", "abcdefg");
	produce_ok(p, &m, 0, &part);
	ck_assert_uint_eq(part, 0);
	ck_assert_int_eq(calls, 4);
	rc = mqlog_produce(p, &m, 4, &part, NULL);
	ck_assert_int_eq(rc, MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "partition 4 out of range"));
	rc = mqlog_produce_async(p, &m, 99, NULL);
	ck_assert_int_eq(rc, MQLOG_EINVAL);
	/* Failed calls wrote nothing. */
	ck_assert_uint_eq(h_info(t, 0).end_offset + h_info(t, 1).end_offset +
				  h_info(t, 2).end_offset +
				  h_info(t, 3).end_offset,
			  3);
	mqlog_producer_free(p);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Null-key records stick to one partition for a whole batch, then move to
 * another: with batches of 10, every run of 10 consecutive records shares
 * a partition, consecutive runs differ, every batch in the log is full,
 * and the records spread over the partitions. */
START_TEST(test_sticky_partitioner)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(4, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct dl d;
	const size_t n = 400;
	char val[32];
	int used[4] = { 0 };

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, n);
	mqlog_producer_options_init(&o);
	o.batch_records = 10;
	o.linger_ms = 3600000; /* only size seals a batch */
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	p = open_producer(t, &o);
	for (size_t i = 0; i < n; i++) {
		snprintf(val, sizeof val, "null-%zu", i);
		mqlog_msg m = kv(NULL, val);
		ck_assert_int_eq(mqlog_produce_async(
					 p, &m, MQLOG_PARTITION_AUTO, tag(i)),
				 0);
	}
	ck_assert_int_eq(mqlog_producer_flush(p), 0);
	ck_assert_uint_eq(d.total, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(d.seen[i], 1);
		ck_assert_int_eq(d.rc[i], 0);
		used[d.part[i]]++;
		if (i % 10)
			ck_assert_msg(d.part[i] == d.part[i - 1],
				      "record %zu left its batch's partition",
				      i);
		else if (i)
			ck_assert_msg(d.part[i] != d.part[i - 1],
				      "record %zu did not switch partition", i);
	}
	for (uint32_t part = 0; part < 4; part++) {
		struct batches bs;
		scan_batches(t, part, &bs);
		for (size_t b = 0; b < bs.n; b++)
			ck_assert_uint_eq(bs.count[b], 10);
		ck_assert_msg(used[part] > 0, "partition %u never used", part);
	}
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Records, headers, timestamps                                             */
/* ------------------------------------------------------------------------ */

/* Keys, values, any number of headers and both kinds of timestamps come
 * back exactly; null and empty stay apart; offsets are the ones returned. */
START_TEST(test_roundtrip)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_header hs[40], out[40];
	mqlog_producer *p;
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	mqlog_msg m[4];
	uint64_t off[4];
	char hk[40][8], hv[40][8];
	int64_t before = h_wall_ms(), after;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	p = open_producer(t, NULL);
	for (int i = 0; i < 40; i++) {
		snprintf(hk[i], sizeof hk[i], "h%d", i);
		snprintf(hv[i], sizeof hv[i], "v%d", i);
		hs[i].key = (mqlog_bytes){ hk[i], strlen(hk[i]) };
		hs[i].value = (mqlog_bytes){ hv[i], strlen(hv[i]) };
	}
	hs[7].value = (mqlog_bytes){ NULL, 0 };
	memset(m, 0, sizeof m);
	m[0] = kv("key", "value");
	m[0].headers = hs;
	m[0].header_count = 40;
	m[0].timestamp = 1234567;
	m[1].key = (mqlog_bytes){ "", 0 };
	m[1].value = (mqlog_bytes){ NULL, 0 };
	m[1].timestamp = MQLOG_TIMESTAMP_NOW;
	m[2] = kv(NULL, "");
	m[2].timestamp = -5;
	m[3] = kv("k3", "now");
	for (int i = 0; i < 4; i++)
		off[i] = produce_ok(p, &m[i], MQLOG_PARTITION_AUTO, NULL);
	after = h_wall_ms();
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(off[i], (uint64_t)i);

	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_int_eq(rec.timestamp, 1234567);
	ck_assert_uint_eq(rec.key.len, 3);
	ck_assert_mem_eq(rec.key.data, "key", 3);
	ck_assert_mem_eq(rec.value.data, "value", 5);
	ck_assert_uint_eq(rec.header_count, 40);
	ck_assert_int_eq(mqlog_record_headers(&rec, out, 40), 40);
	for (int i = 0; i < 40; i++) {
		ck_assert_uint_eq(out[i].key.len, strlen(hk[i]));
		ck_assert_mem_eq(out[i].key.data, hk[i], strlen(hk[i]));
		if (i == 7) {
			ck_assert_ptr_null(out[i].value.data);
		} else {
			ck_assert_uint_eq(out[i].value.len, strlen(hv[i]));
			ck_assert_mem_eq(out[i].value.data, hv[i],
					 strlen(hv[i]));
		}
	}
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_ptr_nonnull(rec.key.data);
	ck_assert_uint_eq(rec.key.len, 0);
	ck_assert_ptr_null(rec.value.data);
	ck_assert_int_ge(rec.timestamp, before);
	ck_assert_int_le(rec.timestamp, after);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_ptr_null(rec.key.data);
	ck_assert_ptr_nonnull(rec.value.data);
	ck_assert_uint_eq(rec.value.len, 0);
	ck_assert_int_eq(rec.timestamp, -5);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_int_ge(rec.timestamp, before);
	ck_assert_int_le(rec.timestamp, after);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	mqlog_reader_close(r);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_producer_free(p);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Records with caller timestamps and records stamped by the library, mixed
 * in one asynchronous stream, keep their order and their timestamps. */
START_TEST(test_mixed_timestamps)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct h_recs rs = { 0 };
	char val[32];
	int64_t before = h_wall_ms(), after;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	mqlog_producer_options_init(&o);
	o.linger_ms = 3600000;
	p = open_producer(t, &o);
	for (int i = 0; i < 300; i++) {
		snprintf(val, sizeof val, "%d", i);
		mqlog_msg m = kv(NULL, val);
		/* Runs of caller timestamps (some far apart) and NOW. */
		if ((i / 7) % 2)
			m.timestamp = (i % 3 == 0) ? INT64_C(1) << 40 :
						     1000 + i;
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, NULL), 0);
	}
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	after = h_wall_ms();
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 300);
	for (int i = 0; i < 300; i++) {
		ck_assert_int_eq(atoi(rs.r[i].val), i);
		if ((i / 7) % 2)
			ck_assert_int_eq(rs.r[i].ts, (i % 3 == 0) ?
							     INT64_C(1) << 40 :
							     1000 + i);
		else
			ck_assert(rs.r[i].ts >= before && rs.r[i].ts <= after);
	}
	h_recs_free(&rs);
	mqlog_producer_free(p);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A record over max_record_bytes fails alone with MQLOG_ETOOBIG (a message
 * naming the limit) and leaves the producer usable; records right at the
 * limit get in even deep in a batch, where their offset and timestamp
 * deltas take more bytes, because such a record starts a new batch. */
START_TEST(test_record_too_big)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct dl d;
	static char big[4096];
	size_t fit = 0;
	int rc;

	c.max_record_bytes = 1024;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	memset(big, 'x', sizeof big);
	dl_init(&d, 1000);
	mqlog_producer_options_init(&o);
	o.linger_ms = 3600000;
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	p = open_producer(t, &o);

	mqlog_msg m = kv(NULL, "");
	m.value.data = big;
	m.value.len = 2000;
	rc = mqlog_produce(p, &m, 0, NULL, NULL);
	ck_assert_int_eq(rc, MQLOG_ETOOBIG);
	ck_assert(h_contains(mqlog_errmsg(NULL), "max_record_bytes"));
	ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(999)),
			 MQLOG_ETOOBIG);

	/* The largest value that fits alone, found by trying. */
	for (size_t len = 1024; len > 900; len--) {
		m.value.len = len;
		if (mqlog_produce(p, &m, 0, NULL, NULL) == 0) {
			fit = len;
			break;
		}
	}
	ck_assert_uint_gt(fit, 1000);
	/* 300 small records, then limit-sized ones with caller timestamps
	 * far from the batch's first: each must still get in. */
	for (size_t i = 0; i < 300; i++) {
		mqlog_msg s = kv(NULL, "small");
		s.timestamp = 5;
		ck_assert_int_eq(mqlog_produce_async(p, &s, 0, tag(i)), 0);
	}
	for (size_t i = 300; i < 310; i++) {
		m.value.len = fit;
		m.timestamp = INT64_C(1) << 50;
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(i)), 0);
	}
	ck_assert_int_eq(mqlog_producer_flush(p), 0);
	ck_assert_uint_eq(d.total, 310);
	ck_assert_uint_eq(d.failed, 0);
	ck_assert_int_eq(d.seen[999], 0);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 311);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Invalid records and options are refused with MQLOG_EINVAL and a
 * message, and change nothing. */
START_TEST(test_invalid_arguments)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(2, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p = NULL;
	mqlog_topic *t;
	mqlog_header h = { { NULL, 0 }, { "v", 1 } };
	mqlog_msg m;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	ck_assert_int_eq(mqlog_producer_open(NULL, NULL, &p), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_producer_open(t, NULL, NULL), MQLOG_EINVAL);
	mqlog_producer_options_init(&o);
	o.batch_records = 0;
	ck_assert_int_eq(mqlog_producer_open(t, &o, &p), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "batch_records"));
	mqlog_producer_options_init(&o);
	o.batch_bytes = 0;
	ck_assert_int_eq(mqlog_producer_open(t, &o, &p), MQLOG_EINVAL);
	mqlog_producer_options_init(&o);
	o.linger_ms = 3600001;
	ck_assert_int_eq(mqlog_producer_open(t, &o, &p), MQLOG_EINVAL);
	mqlog_producer_options_init(&o);
	o.sync = 7;
	ck_assert_int_eq(mqlog_producer_open(t, &o, &p), MQLOG_EINVAL);
	mqlog_producer_options_init(&o);
	o.partitioner = 9;
	ck_assert_int_eq(mqlog_producer_open(t, &o, &p), MQLOG_EINVAL);
	ck_assert_ptr_null(p);

	p = open_producer(t, NULL);
	ck_assert_int_eq(mqlog_produce(NULL, &m, 0, NULL, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_produce(p, NULL, 0, NULL, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_produce_async(p, NULL, 0, NULL), MQLOG_EINVAL);
	m = kv("k", "v");
	m.key.data = NULL;
	ck_assert_int_eq(mqlog_produce(p, &m, 0, NULL, NULL), MQLOG_EINVAL);
	H_ASSERT_MSG(db);
	m = kv("k", "v");
	m.value.data = NULL;
	ck_assert_int_eq(mqlog_produce_async(p, &m, 0, NULL), MQLOG_EINVAL);
	m = kv("k", "v");
	m.headers = &h;
	m.header_count = 1;
	ck_assert_int_eq(mqlog_produce(p, &m, 0, NULL, NULL), MQLOG_EINVAL);
	ck_assert(h_contains(mqlog_errmsg(NULL), "null key"));
	m.headers = NULL;
	ck_assert_int_eq(mqlog_produce(p, &m, 0, NULL, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_producer_flush(NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_producer_close(NULL), MQLOG_EINVAL);
	mqlog_producer_free(NULL);
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	ck_assert_uint_eq(h_info(t, 0).end_offset + h_info(t, 1).end_offset, 0);
	mqlog_producer_free(p);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* A read-only directory gets no producer. */
	{
		mqlog_options oo;
		mqlog_options_init(&oo);
		oo.flags = MQLOG_OPEN_RDONLY;
		ck_assert_int_eq(mqlog_open(dbdir(), &oo, &db), 0);
		t = h_topic(db, "t");
		p = NULL;
		ck_assert_int_eq(mqlog_producer_open(t, NULL, &p),
				 MQLOG_ERDONLY);
		ck_assert_ptr_null(p);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Batching                                                                 */
/* ------------------------------------------------------------------------ */

/* Batches are sealed at batch_records records and at about batch_bytes
 * bytes; flush appends the partial last one. */
START_TEST(test_batch_limits)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(2, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct batches bs;
	char val[200];

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	mqlog_producer_options_init(&o);
	o.batch_records = 10;
	o.linger_ms = 3600000;
	p = open_producer(t, &o);
	for (int i = 0; i < 95; i++) {
		mqlog_msg m = kv(NULL, "r");
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, NULL), 0);
	}
	ck_assert_int_eq(mqlog_producer_flush(p), 0);
	scan_batches(t, 0, &bs);
	ck_assert_uint_eq(bs.n, 10);
	for (size_t b = 0; b < 9; b++)
		ck_assert_uint_eq(bs.count[b], 10);
	ck_assert_uint_eq(bs.count[9], 5);
	mqlog_producer_free(p);

	/* By bytes: ~1 KiB batches of ~210-byte records. */
	mqlog_producer_options_init(&o);
	o.batch_bytes = 1024;
	o.linger_ms = 3600000;
	p = open_producer(t, &o);
	memset(val, 'b', sizeof val - 1);
	val[sizeof val - 1] = '\0';
	for (int i = 0; i < 100; i++) {
		mqlog_msg m = kv("key", val);
		ck_assert_int_eq(mqlog_produce_async(p, &m, 1, NULL), 0);
	}
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	scan_batches(t, 1, &bs);
	ck_assert_uint_ge(bs.n, 20);
	for (size_t b = 0; b < bs.n; b++)
		ck_assert_uint_le(bs.count[b], 5);
	ck_assert_uint_eq(h_info(t, 1).end_offset, 100);
	mqlog_producer_free(p);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* An asynchronous record waits up to linger_ms for company, then the
 * background thread appends it; flush does not wait for the linger. */
START_TEST(test_linger)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct dl d;
	double t0, waited;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, 10);
	mqlog_producer_options_init(&o);
	o.linger_ms = 300;
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	p = open_producer(t, &o);

	mqlog_msg m = kv(NULL, "lingering");
	t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(0)), 0);
	h_sleep_ms(50);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 0);
	while (h_info(t, 0).end_offset == 0 && h_mono_ms() - t0 < 10000)
		h_sleep_ms(5);
	waited = h_mono_ms() - t0;
	ck_assert_uint_eq(h_info(t, 0).end_offset, 1);
	ck_assert_msg(waited >= 250, "appended after %.0f ms", waited);

	/* flush goes at once. */
	t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(1)), 0);
	ck_assert_int_eq(mqlog_producer_flush(p), 0);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 2);
	ck_assert_msg(h_mono_ms() - t0 < 250, "flush took %.0f ms",
		      h_mono_ms() - t0);
	ck_assert_int_eq(d.seen[0], 1);
	ck_assert_int_eq(d.seen[1], 1);

	/* A synchronous record never lingers. */
	t0 = h_mono_ms();
	produce_ok(p, &m, 0, NULL);
	ck_assert_msg(h_mono_ms() - t0 < 250, "sync produce took %.0f ms",
		      h_mono_ms() - t0);
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Outcomes: flush, close, failures                                         */
/* ------------------------------------------------------------------------ */

/* Every asynchronous record gets exactly one delivery report, from the
 * producer's background thread, with the offset it has in the log; close
 * delivers what was still lingering; afterwards every call fails with
 * MQLOG_ECLOSED. */
START_TEST(test_close_delivers_everything)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(3, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct dl d;
	const size_t n = 5000;
	char key[32], val[32];

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, n);
	mqlog_producer_options_init(&o);
	o.batch_records = 64;
	o.linger_ms = 3600000; /* the tail only goes with close */
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	p = open_producer(t, &o);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%zu", i % 17);
		snprintf(val, sizeof val, "%zu", i);
		mqlog_msg m = kv(key, val);
		ck_assert_int_eq(mqlog_produce_async(
					 p, &m, MQLOG_PARTITION_AUTO, tag(i)),
				 0);
	}
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	ck_assert_uint_eq(d.total, n);
	ck_assert(!pthread_equal(d.thread, pthread_self()));
	for (uint32_t part = 0; part < 3; part++) {
		struct h_recs rs = { 0 };
		h_read_all(t, part, &rs);
		for (size_t i = 0; i < rs.n; i++) {
			size_t k = (size_t)atol(rs.r[i].val);
			ck_assert_int_eq(d.seen[k], 1);
			ck_assert_int_eq(d.rc[k], 0);
			ck_assert_uint_eq(d.part[k], part);
			ck_assert_uint_eq(d.off[k], rs.r[i].off);
		}
		h_recs_free(&rs);
	}
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(d.seen[i], 1);

	mqlog_msg m = kv("k", "late");
	ck_assert_int_eq(mqlog_produce(p, &m, 0, NULL, NULL), MQLOG_ECLOSED);
	ck_assert(h_contains(mqlog_errmsg(NULL), "closed"));
	ck_assert_int_eq(mqlog_produce_async(p, &m, 0, NULL), MQLOG_ECLOSED);
	ck_assert_int_eq(mqlog_producer_flush(p), MQLOG_ECLOSED);
	ck_assert_int_eq(mqlog_producer_close(p), MQLOG_ECLOSED);
	ck_assert_uint_eq(d.total, n);
	ck_assert_str_eq(mqlog_errname(MQLOG_ECLOSED), "MQLOG_ECLOSED");
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A failed append is reported to every record of the batch: through the
 * callback (with a message) and once by the next flush, even without a
 * callback; the producer goes on afterwards. */
START_TEST(test_failures_reported)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct dl d;
	int rc;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, 100);
	mqlog_producer_options_init(&o);
	o.linger_ms = 3600000;
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	p = open_producer(t, &o);
	h_append1(t, 0, "warm"); /* the partition exists before the fault */
	for (size_t i = 0; i < 20; i++) {
		mqlog_msg m = kv(NULL, "doomed");
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(i)), 0);
	}
	io_fault_set(IO_OP_WRITE, 1, ENOSPC, false);
	rc = mqlog_producer_flush(p);
	io_fault_clear();
	ck_assert_int_eq(rc, -ENOSPC);
	H_ASSERT_MSG(db);
	ck_assert_uint_eq(d.total, 20);
	ck_assert_uint_eq(d.failed, 20);
	ck_assert(d.msgs_ok);
	for (size_t i = 0; i < 20; i++)
		ck_assert_int_eq(d.rc[i], -ENOSPC);
	/* Reported once; the producer still works. */
	ck_assert_int_eq(mqlog_producer_flush(p), 0);
	{
		mqlog_msg m = kv(NULL, "fine");
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(50)), 0);
		uint64_t off = produce_ok(p, &m, 0, NULL);
		ck_assert_uint_eq(off, 2);
	}
	ck_assert_int_eq(mqlog_producer_flush(p), 0);
	ck_assert_int_eq(d.rc[50], 0);
	ck_assert_uint_eq(d.off[50], 1);
	mqlog_producer_free(p);

	/* Without a callback, flush is where the failure shows. */
	mqlog_producer_options_init(&o);
	o.linger_ms = 3600000;
	p = open_producer(t, &o);
	{
		mqlog_msg m = kv(NULL, "doomed");
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, NULL), 0);
	}
	io_fault_set(IO_OP_WRITE, 1, EIO, false);
	rc = mqlog_producer_close(p);
	io_fault_clear();
	ck_assert_int_eq(rc, -EIO);
	H_ASSERT_MSG(db);
	mqlog_producer_free(p);

	/* A synchronous caller gets its batch's error and its message. */
	p = open_producer(t, NULL);
	{
		mqlog_msg m = kv(NULL, "sync doomed");
		io_fault_set(IO_OP_WRITE, 1, ENOSPC, false);
		rc = mqlog_produce(p, &m, 0, NULL, NULL);
		io_fault_clear();
		ck_assert_int_eq(rc, -ENOSPC);
		ck_assert(h_contains(mqlog_errmsg(NULL), ".seg"));
	}
	mqlog_producer_free(p);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 3);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* After a fatal error (the partition fail-stopped by a failed fdatasync)
 * the records waiting get the error, and every later call fails with it,
 * saying that the producer stopped. */
START_TEST(test_fatal_error)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct dl d;
	int rc;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, 100);
	mqlog_producer_options_init(&o);
	o.linger_ms = 3600000;
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	p = open_producer(t, &o);
	h_append1(t, 0, "before");
	{
		mqlog_msg m = kv(NULL, "x");
		io_fault_set(IO_OP_SYNC, 1, EIO, false);
		rc = mqlog_produce(p, &m, 0, NULL, NULL);
		io_fault_clear();
		ck_assert_int_lt(rc, 0);
		ck_assert_int_eq(h_info(t, 0).failed, 1);
		/* The next append meets the fail-stopped partition. */
		rc = mqlog_produce(p, &m, 0, NULL, NULL);
		ck_assert_int_eq(rc, MQLOG_EFAILED);
		rc = mqlog_produce(p, &m, 0, NULL, NULL);
		ck_assert_int_eq(rc, MQLOG_EFAILED);
		ck_assert(h_contains(mqlog_errmsg(NULL), "stopped"));
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(1)),
				 MQLOG_EFAILED);
		ck_assert(h_contains(mqlog_errmsg(NULL), "stopped"));
	}
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	ck_assert_uint_eq(d.total, 0);
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Under the REJECT policy a batch that does not fit whole is cut: the
 * records that fit get in, in order, the rest fail with MQLOG_EFULL (and
 * the batches after it too, while the partition stays full). */
START_TEST(test_reject_policy)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_producer *p;
	mqlog_topic *t;
	struct dl d;
	struct h_recs rs = { 0 };
	char val[32];

	c.max_messages = 25;
	c.full_policy = MQLOG_FULL_REJECT;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, 100);
	mqlog_producer_options_init(&o);
	o.linger_ms = 3600000;
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	p = open_producer(t, &o);
	for (int i = 0; i < 10; i++)
		h_append1(t, 0, "-1");
	/* Batches of 25 (the limit): the first has room for 15 only. */
	for (size_t i = 0; i < 40; i++) {
		snprintf(val, sizeof val, "%zu", i);
		mqlog_msg m = kv(NULL, val);
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(i)), 0);
	}
	ck_assert_int_eq(mqlog_producer_flush(p), MQLOG_EFULL);
	H_ASSERT_MSG(db);
	ck_assert_uint_eq(d.total, 40);
	for (size_t i = 0; i < 40; i++) {
		if (i < 15) {
			ck_assert_int_eq(d.rc[i], 0);
			ck_assert_uint_eq(d.off[i], 10 + i);
		} else {
			ck_assert_int_eq(d.rc[i], MQLOG_EFULL);
		}
	}
	ck_assert(d.msgs_ok);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 25);
	for (size_t i = 10; i < 25; i++)
		ck_assert_int_eq(atoi(rs.r[i].val), (int)i - 10);
	h_recs_free(&rs);
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Routing by a header                                                      */
/* ------------------------------------------------------------------------ */

struct routed {
	int orders, payments, fallback; /* calls per handler */
	uint64_t last;			/* offset of the last record routed */
};

static int on_order(void *arg, const mqlog_record *rec)
{
	struct routed *r = arg;
	r->orders++;
	r->last = rec->offset;
	return 0;
}

static int on_payment(void *arg, const mqlog_record *rec)
{
	struct routed *r = arg;
	r->payments++;
	r->last = rec->offset;
	/* A handler's error comes back from the dispatch. */
	return rec->value.len == 3 ? MQLOG_EBUSY : 0;
}

static int on_other(void *arg, const mqlog_record *rec)
{
	struct routed *r = arg;
	r->fallback++;
	r->last = rec->offset;
	return 0;
}

/* Records carry their message type in a header; mqlog_route_record sends
 * each to the handler of its type (the last "type" header wins, as Kafka's
 * lastHeader), the rest to a fallback route or MQLOG_ENOENT. */
START_TEST(test_header_routing)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer *p;
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	struct routed got = { 0 };
	mqlog_header h_order[1] = { { { "type", 4 }, { "order", 5 } } };
	mqlog_header h_pay[2] = { { { "type", 4 }, { "order", 5 } },
				  { { "type", 4 }, { "payment", 7 } } };
	mqlog_header h_misc[2] = { { { "trace", 5 }, { "abc", 3 } },
				   { { "type", 4 }, { "refund", 6 } } };
	mqlog_header h_null[1] = { { { "type", 4 }, { NULL, 0 } } };
	const mqlog_route table[] = {
		{ "order", on_order, &got },
		{ "payment", on_payment, &got },
	};
	const mqlog_route with_fallback[] = {
		{ "order", on_order, &got },
		{ "payment", on_payment, &got },
		{ NULL, on_other, &got },
	};
	mqlog_bytes v;
	int rc;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	p = open_producer(t, NULL);
	{
		mqlog_msg m = kv("k", "o1");
		m.headers = h_order;
		m.header_count = 1;
		produce_ok(p, &m, 0, NULL); /* 0: order */
		m.headers = h_pay;
		m.header_count = 2;
		produce_ok(p, &m, 0, NULL); /* 1: payment (last wins) */
		m.value = (mqlog_bytes){ "bad", 3 };
		produce_ok(p, &m, 0, NULL); /* 2: payment, handler fails */
		m.value = (mqlog_bytes){ "o1", 2 };
		m.headers = h_misc;
		produce_ok(p, &m, 0, NULL); /* 3: refund: no route */
		m.headers = NULL;
		m.header_count = 0;
		produce_ok(p, &m, 0, NULL); /* 4: no headers */
		m.headers = h_null;
		m.header_count = 1;
		produce_ok(p, &m, 0, NULL); /* 5: null type */
	}
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_int_eq(mqlog_record_header(&rec, "type", 4, &v), 1);
	ck_assert_uint_eq(v.len, 5);
	ck_assert_int_eq(mqlog_record_header(&rec, "nope", 4, &v), 0);
	ck_assert_int_eq(mqlog_route_record(&rec, "type", table, 2), 0);
	ck_assert_int_eq(got.orders, 1);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_int_eq(mqlog_route_record(&rec, "type", table, 2), 0);
	ck_assert_int_eq(got.payments, 1);
	ck_assert_uint_eq(got.last, 1);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_int_eq(mqlog_route_record(&rec, "type", table, 2),
			 MQLOG_EBUSY);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	rc = mqlog_route_record(&rec, "type", table, 2);
	ck_assert_int_eq(rc, MQLOG_ENOENT);
	ck_assert(h_contains(mqlog_errmsg(NULL), "refund"));
	ck_assert_int_eq(mqlog_route_record(&rec, "type", with_fallback, 3), 0);
	ck_assert_int_eq(got.fallback, 1);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	rc = mqlog_route_record(&rec, "type", table, 2);
	ck_assert_int_eq(rc, MQLOG_ENOENT);
	ck_assert(h_contains(mqlog_errmsg(NULL), "no header"));
	ck_assert_int_eq(mqlog_route_record(&rec, "type", with_fallback, 3), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_int_eq(mqlog_record_header(&rec, "type", 4, &v), 1);
	ck_assert_ptr_null(v.data);
	ck_assert_int_eq(mqlog_route_record(&rec, "type", table, 2),
			 MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_route_record(&rec, "type", with_fallback, 3), 0);
	ck_assert_int_eq(got.fallback, 3);
	/* Malformed headers are reported, not trusted. */
	{
		mqlog_record bad = rec;
		static const unsigned char junk[] = { 0xff, 0xff, 0xff };
		bad.headers_raw = junk;
		bad.headers_raw_len = sizeof junk;
		bad.header_count = 1;
		ck_assert_int_eq(mqlog_record_header(&bad, "type", 4, &v),
				 MQLOG_ECORRUPT);
		ck_assert_int_eq(mqlog_route_record(&bad, "type", table, 2),
				 MQLOG_ECORRUPT);
	}
	ck_assert_int_eq(mqlog_route_record(NULL, "type", table, 2),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_route_record(&rec, NULL, table, 2),
			 MQLOG_EINVAL);
	mqlog_reader_close(r);
	mqlog_producer_free(p);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

#define KT_THREADS 8
#define KT_PER	   1500
#define KT_KEYS	   5

struct kthread {
	mqlog_producer *p; /* shared producer */
	int id;		   /* thread number */
	int per;	   /* records to produce */
	int async_every;   /* every Nth record goes asynchronously (0: none) */
	int fails;	   /* calls that failed */
	mqlog_topic *t;	   /* for the durability check */
	int durable_ok;	   /* every sync call returned durable */
};

static void *kthread_main(void *arg)
{
	struct kthread *k = arg;
	char key[32], val[64];

	for (int j = 0; j < k->per; j++) {
		snprintf(key, sizeof key, "t%d-k%d", k->id, j % KT_KEYS);
		snprintf(val, sizeof val, "t%d-k%d:%d", k->id, j % KT_KEYS,
			 j / KT_KEYS);
		mqlog_msg m = kv(key, val);
		int rc;
		if (k->async_every && j % k->async_every == 0) {
			rc = mqlog_produce_async(k->p, &m, MQLOG_PARTITION_AUTO,
						 NULL);
		} else {
			uint32_t part;
			uint64_t off;
			rc = mqlog_produce(k->p, &m, MQLOG_PARTITION_AUTO,
					   &part, &off);
			if (rc == 0 && k->t) {
				mqlog_partition_info in;
				if (mqlog_partition_stat(k->t, part, &in) !=
					    0 ||
				    in.durable_offset <= off)
					k->durable_ok = 0;
			}
		}
		if (rc)
			k->fails++;
	}
	return NULL;
}

/* Check that every key's records are there once each and in order. */
static void check_key_order(mqlog_topic *t, uint32_t parts, int threads,
			    int per)
{
	int next[KT_THREADS][KT_KEYS];
	size_t total = 0;

	memset(next, 0, sizeof next);
	for (uint32_t part = 0; part < parts; part++) {
		struct h_recs rs = { 0 };
		h_read_all(t, part, &rs);
		for (size_t i = 0; i < rs.n; i++) {
			int id, key, seq;
			ck_assert_uint_eq(rs.r[i].off, i);
			ck_assert_int_eq(sscanf(rs.r[i].val, "t%d-k%d:%d", &id,
						&key, &seq),
					 3);
			ck_assert(id >= 0 && id < threads && key >= 0 &&
				  key < KT_KEYS);
			ck_assert_msg(seq == next[id][key],
				      "t%d-k%d: %d after %d", id, key, seq,
				      next[id][key] - 1);
			next[id][key]++;
			ck_assert_uint_eq(part, mqlog_partition_for_key(
							rs.r[i].key,
							rs.r[i].klen, parts));
		}
		total += rs.n;
		h_recs_free(&rs);
	}
	ck_assert_uint_eq(total, (size_t)threads * (size_t)per);
}

/* Eight threads share one producer, mixing synchronous and asynchronous
 * calls: every key's records land on its partition once each, in the
 * order its thread produced them, with dense offsets. */
START_TEST(test_threads_key_order)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(3, 256 * 1024, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_topic *t;
	pthread_t th[KT_THREADS];
	struct kthread k[KT_THREADS];

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	mqlog_producer_options_init(&o);
	o.batch_records = 50;
	o.linger_ms = 1;
	mqlog_producer *p = open_producer(t, &o);
	for (int i = 0; i < KT_THREADS; i++) {
		k[i] =
			(struct kthread){ p, i,	   KT_PER, i % 3 ? 2 : 0,
					  0, NULL, 1 };
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, kthread_main, &k[i]), 0);
	}
	for (int i = 0; i < KT_THREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(k[i].fails, 0);
	}
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	mqlog_producer_free(p);
	check_key_order(t, 3, KT_THREADS, KT_PER);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Under sync ALWAYS, threads producing synchronously to one partition share
 * batches (and so fdatasyncs), and each call returns only once its record
 * is durable. */
START_TEST(test_threads_share_batches)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	mqlog_topic *t;
	pthread_t th[KT_THREADS];
	struct kthread k[KT_THREADS];
	struct batches bs;
	const int threads = 6;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	mqlog_producer *p = open_producer(t, NULL);
	for (int i = 0; i < threads; i++) {
		k[i] = (struct kthread){ p, i, 150, 0, 0, t, 1 };
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, kthread_main, &k[i]), 0);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(k[i].fails, 0);
		ck_assert_msg(k[i].durable_ok,
			      "thread %d: a call returned "
			      "before its record was durable",
			      i);
	}
	mqlog_producer_free(p);
	check_key_order(t, 1, threads, 150);
	scan_batches(t, 0, &bs);
	ck_assert_msg(bs.n < (size_t)threads * 150,
		      "%zu batches for %d records: no sharing", bs.n,
		      threads * 150);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct racer {
	mqlog_producer *p; /* shared */
	int id;		   /* thread number */
	int accepted;	   /* async calls that returned 0 */
	int ok;		   /* sync calls that returned 0 */
	int closed;	   /* calls that got MQLOG_ECLOSED */
	int other;	   /* any other error */
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	char val[32];

	for (int j = 0;; j++) {
		snprintf(val, sizeof val, "r%d:%d", r->id, j);
		mqlog_msg m = kv(NULL, val);
		int rc = (j % 2) ? mqlog_produce(r->p, &m, MQLOG_PARTITION_AUTO,
						 NULL, NULL) :
				   mqlog_produce_async(r->p, &m,
						       MQLOG_PARTITION_AUTO,
						       tag((size_t)r->id));
		if (rc == MQLOG_ECLOSED) {
			r->closed++;
			break;
		}
		if (rc)
			r->other++;
		else if (j % 2)
			r->ok++;
		else
			r->accepted++;
	}
	return NULL;
}

/* Threads keep producing while another closes the producer: each call
 * either gets its record in (and an outcome: sync return or one callback)
 * or fails with MQLOG_ECLOSED, so the log holds exactly the successful
 * records. */
START_TEST(test_close_races_producers)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(2, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_topic *t;
	pthread_t th[4];
	struct racer r[4];
	struct dl d;
	uint64_t logged, succeeded = 0;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, 4);
	mqlog_producer_options_init(&o);
	o.linger_ms = 2;
	o.batch_records = 32;
	o.on_delivery = on_delivery;
	o.delivery_arg = &d;
	mqlog_producer *p = open_producer(t, &o);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct racer){ p, i, 0, 0, 0, 0 };
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
	}
	h_sleep_ms(100);
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(r[i].other, 0);
		ck_assert_int_eq(r[i].closed, 1);
		ck_assert_int_eq(d.seen[i], r[i].accepted);
		succeeded += (uint64_t)(r[i].ok + r[i].accepted);
	}
	ck_assert_uint_eq(d.failed, 0);
	logged = h_info(t, 0).end_offset + h_info(t, 1).end_offset;
	ck_assert_uint_eq(logged, succeeded);
	ck_assert_uint_gt(succeeded, 0);
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static void reentrant_delivery(void *arg, const mqlog_delivery *dv)
{
	struct dl *d = arg;
	if (dv->opaque == tag(0)) {
		mqlog_msg m = kv(NULL, "from the callback");
		d->flush_rc = mqlog_producer_flush(d->prod);
		d->close_rc = mqlog_producer_close(d->prod);
		d->inner_rc = mqlog_produce_async(d->prod, &m, 0, tag(1));
	}
	on_delivery(arg, dv);
}

/* A delivery callback may produce, but flush and close from it fail with
 * MQLOG_EBUSY instead of deadlocking. */
START_TEST(test_callback_reentrancy)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_producer_options o;
	mqlog_topic *t;
	struct dl d;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	dl_init(&d, 4);
	mqlog_producer_options_init(&o);
	o.on_delivery = reentrant_delivery;
	o.delivery_arg = &d;
	mqlog_producer *p = open_producer(t, &o);
	d.prod = p;
	{
		mqlog_msg m = kv(NULL, "first");
		ck_assert_int_eq(mqlog_produce_async(p, &m, 0, tag(0)), 0);
	}
	ck_assert_int_eq(mqlog_producer_flush(p), 0);
	ck_assert_int_eq(d.flush_rc, MQLOG_EBUSY);
	ck_assert_int_eq(d.close_rc, MQLOG_EBUSY);
	ck_assert_int_eq(d.inner_rc, 0);
	ck_assert_int_eq(mqlog_producer_close(p), 0);
	ck_assert_int_eq(d.seen[0], 1);
	ck_assert_int_eq(d.seen[1], 1);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 2);
	mqlog_producer_free(p);
	dl_free(&d);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Processes                                                                */
/* ------------------------------------------------------------------------ */

#define MP_PROCS 4
#define MP_PER	 3000
#define MP_KEYS	 7

static int wait_child(pid_t pid)
{
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Child: produce MP_PER keyed records "P<proc>-k<key>:<seq>" through an
 * asynchronous producer (some synchronously), then exit 0. */
static void producer_child(int proc)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	mqlog_producer *p = NULL;
	mqlog_producer_options o;
	char key[32], val[64];
	int rc = 0;

	if (mqlog_open(dbdir(), NULL, &db) != 0 ||
	    mqlog_topic_open(db, "t", &t) != 0)
		_exit(10);
	mqlog_producer_options_init(&o);
	o.batch_records = 100;
	o.linger_ms = 1;
	if (mqlog_producer_open(t, &o, &p) != 0)
		_exit(11);
	for (int j = 0; j < MP_PER && rc == 0; j++) {
		snprintf(key, sizeof key, "P%d-k%d", proc, j % MP_KEYS);
		snprintf(val, sizeof val, "P%d-k%d:%d", proc, j % MP_KEYS,
			 j / MP_KEYS);
		mqlog_msg m = kv(key, val);
		rc = (j % 10 == 0) ?
			     mqlog_produce(p, &m, MQLOG_PARTITION_AUTO, NULL,
					   NULL) :
			     mqlog_produce_async(p, &m, MQLOG_PARTITION_AUTO,
						 NULL);
	}
	if (rc == 0)
		rc = mqlog_producer_close(p);
	mqlog_producer_free(p);
	mqlog_topic_close(t);
	mqlog_close(db);
	_exit(rc == 0 ? 0 : 12);
}

/* Verify the records of @nproc producer processes (all complete unless
 * @partial): dense offsets, per-key order per process, no duplicates. */
static void check_processes(mqlog_topic *t, uint32_t parts, int nproc,
			    int partial)
{
	int next[MP_PROCS + 2][MP_KEYS];
	size_t total = 0;

	memset(next, 0, sizeof next);
	for (uint32_t part = 0; part < parts; part++) {
		struct h_recs rs = { 0 };
		h_read_all(t, part, &rs);
		for (size_t i = 0; i < rs.n; i++) {
			int proc, key, seq;
			ck_assert_uint_eq(rs.r[i].off, i);
			ck_assert_int_eq(sscanf(rs.r[i].val, "P%d-k%d:%d",
						&proc, &key, &seq),
					 3);
			ck_assert(proc >= 0 && proc < nproc && key >= 0 &&
				  key < MP_KEYS);
			ck_assert_msg(seq == next[proc][key],
				      "P%d-k%d: %d after %d", proc, key, seq,
				      next[proc][key] - 1);
			next[proc][key]++;
		}
		total += rs.n;
		h_recs_free(&rs);
	}
	if (!partial)
		ck_assert_uint_eq(total, (size_t)nproc * MP_PER);
}

/* Four processes produce to one topic at once: offsets stay dense, every
 * record is there once, and each process's per-key order holds. */
START_TEST(test_processes_produce)
{
	pid_t pids[MP_PROCS];
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(3, 128 * 1024, MQLOG_SYNC_NONE);

	h_create(db, "t", &c);
	mqlog_close(db);
	fflush(NULL);
	for (int i = 0; i < MP_PROCS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0)
			producer_child(i);
	}
	for (int i = 0; i < MP_PROCS; i++)
		ck_assert_msg(wait_child(pids[i]) == 0, "producer %d failed",
			      i);
	db = h_open(dbdir());
	mqlog_topic *t = h_topic(db, "t");
	check_processes(t, 3, MP_PROCS, 0);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/*
 * Child: take partition 0's append lock directly, write half a batch past
 * the published end (what a producer killed in mid-write leaves), tell the
 * parent, and wait to be killed.
 */
static void lock_holder_child(int ready_fd)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	struct partition *part;
	char path[MQ_PATH_MAX];
	uint8_t junk[300];
	int fd;

	if (mqlog_open(dbdir(), NULL, &db) != 0 ||
	    mqlog_topic_open(db, "t", &t) != 0 ||
	    topic_partition(t, 0, &part) != 0)
		_exit(20);
	if (pthread_mutex_lock(&part->st->append_lock) != 0)
		_exit(21);
	/* A batch header that announces more bytes than follow. */
	memset(junk, 0x5a, sizeof junk);
	mq_st32(junk, BATCH_MAGIC);
	mq_st32(junk + 4, 4096);
	partition_seg_path(part, part->st->seg_base, path);
	fd = open(path, O_WRONLY);
	if (fd < 0 || pwrite(fd, junk, sizeof junk,
			     (off_t)part->st->seg_end_pos) != sizeof junk)
		_exit(22);
	close(fd);
	if (write(ready_fd, "L", 1) != 1)
		_exit(23);
	for (;;)
		pause();
}

/* A producer process killed with SIGKILL while it holds a partition's
 * append lock, half a batch written: producers blocked on the lock in
 * other processes take over (the lock is robust and the tail is repaired),
 * all of their records get in with dense offsets, and no partial batch is
 * ever visible. */
START_TEST(test_sigkill_holding_append_lock)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	pid_t holder, pids[2];
	int ready[2];
	char ch;

	h_create(db, "t", &c);
	{
		/* Something before the crash. */
		mqlog_topic *t = h_topic(db, "t");
		mqlog_producer *p = open_producer(t, NULL);
		mqlog_msg m = kv("P3-k0", "P3-k0:0");
		produce_ok(p, &m, 0, NULL);
		mqlog_producer_free(p);
		mqlog_topic_close(t);
	}
	mqlog_close(db);
	ck_assert_int_eq(pipe(ready), 0);
	fflush(NULL);
	holder = fork();
	ck_assert_int_ge(holder, 0);
	if (holder == 0) {
		close(ready[0]);
		lock_holder_child(ready[1]);
	}
	close(ready[1]);
	ck_assert_int_eq(read(ready[0], &ch, 1), 1);
	close(ready[0]);

	/* Producers that will block on the lock. */
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0)
			producer_child(i);
	}
	h_sleep_ms(200);
	ck_assert_int_eq(kill(holder, SIGKILL), 0);
	ck_assert_int_eq(wait_child(holder), 128 + SIGKILL);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(wait_child(pids[i]) == 0, "producer %d failed",
			      i);

	db = h_open(dbdir());
	mqlog_topic *t = h_topic(db, "t");
	struct h_recs rs = { 0 };
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 1 + 2 * MP_PER);
	ck_assert_str_eq(rs.r[0].val, "P3-k0:0");
	h_recs_free(&rs);
	{
		/* Without the record from before, the rest is in order. */
		int next[2][MP_KEYS];
		memset(next, 0, sizeof next);
		h_read_from(t, 0, 1, &rs);
		for (size_t i = 0; i < rs.n; i++) {
			int proc, key, seq;
			ck_assert_uint_eq(rs.r[i].off, i + 1);
			ck_assert_int_eq(sscanf(rs.r[i].val, "P%d-k%d:%d",
						&proc, &key, &seq),
					 3);
			ck_assert(proc == 0 || proc == 1);
			ck_assert_int_eq(seq, next[proc][key]);
			next[proc][key]++;
		}
		h_recs_free(&rs);
	}
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Producer processes killed at random moments (often inside an append)
 * never leave a partial batch: the survivors' records and the partition
 * stay consistent, and a later producer appends at the end. */
START_TEST(test_sigkill_random_producers)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(2, 64 * 1024, MQLOG_SYNC_NONE);
	uint64_t seed = 77;

	h_create(db, "t", &c);
	mqlog_close(db);
	for (int round = 0; round < 4; round++) {
		pid_t victim, survivor;
		fflush(NULL);
		victim = fork();
		ck_assert_int_ge(victim, 0);
		if (victim == 0)
			producer_child(0);
		survivor = fork();
		ck_assert_int_ge(survivor, 0);
		if (survivor == 0)
			producer_child(1);
		h_sleep_ms(5 + (unsigned)(h_rand(&seed) % 40));
		kill(victim, SIGKILL);
		wait_child(victim);
		ck_assert_int_eq(wait_child(survivor), 0);

		db = h_open(dbdir());
		mqlog_topic *t = h_topic(db, "t");
		ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
		for (uint32_t part = 0; part < 2; part++) {
			struct h_recs rs = { 0 };
			h_read_all(t, part, &rs);
			for (size_t i = 0; i < rs.n; i++)
				ck_assert_uint_eq(rs.r[i].off, i);
			mqlog_producer *p = open_producer(t, NULL);
			mqlog_msg m = kv(NULL, "after");
			ck_assert_uint_eq(produce_ok(p, &m, part, NULL), rs.n);
			mqlog_producer_free(p);
			h_recs_free(&rs);
		}
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

static Suite *producer_suite(void)
{
	Suite *s = suite_create("producer");
	TCase *tc = tcase_create("unit");
	TCase *cc = tcase_create("concurrency");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_murmur2_vectors);
	tcase_add_test(tc, test_key_distribution);
	tcase_add_test(tc, test_keyed_partitioning);
	tcase_add_test(tc, test_custom_partitioner);
	tcase_add_test(tc, test_sticky_partitioner);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_mixed_timestamps);
	tcase_add_test(tc, test_record_too_big);
	tcase_add_test(tc, test_invalid_arguments);
	tcase_add_test(tc, test_batch_limits);
	tcase_add_test(tc, test_linger);
	tcase_add_test(tc, test_close_delivers_everything);
	tcase_add_test(tc, test_failures_reported);
	tcase_add_test(tc, test_fatal_error);
	tcase_add_test(tc, test_reject_policy);
	tcase_add_test(tc, test_header_routing);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(cc, fx_setup, fx_teardown);
	tcase_set_timeout(cc, 120);
	tcase_add_test(cc, test_threads_key_order);
	tcase_add_test(cc, test_threads_share_batches);
	tcase_add_test(cc, test_close_races_producers);
	tcase_add_test(cc, test_callback_reentrancy);
	tcase_add_test(cc, test_processes_produce);
	tcase_add_test(cc, test_sigkill_holding_append_lock);
	tcase_add_test(cc, test_sigkill_random_producers);
	suite_add_tcase(s, cc);
	return s;
}

H_MAIN(producer_suite)
