/*
 * test_record.c - the batch format: encoding, decoding, checksums, the
 * validity rules and the default partitioner (src/record.c).
 *
 * Buffers handed to the decoder are allocated at their exact size so that
 * AddressSanitizer turns any read past a batch into a failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "internal.h"

#define NOW_MS INT64_C(1700000000000)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static mqlog_bytes B(const char *s)
{
	mqlog_bytes b = { s, s ? strlen(s) : 0 };
	return b;
}

static const mqlog_bytes NUL = { NULL, 0 };

static mqlog_msg msg_kv(const char *k, const char *v, int64_t ts)
{
	mqlog_msg m;

	memset(&m, 0, sizeof(m));
	m.key = B(k);
	m.value = B(v);
	m.timestamp = ts;
	return m;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(p);
	return p;
}

/* Encode and seal @msgs into a buffer of exactly the batch's size. */
static uint8_t *encode(const mqlog_msg *msgs, size_t n, uint64_t base,
		       size_t *size)
{
	uint8_t *buf;
	int rc;

	rc = batch_encoded_size(msgs, n, UINT32_MAX, NOW_MS, size);
	ck_assert_msg(rc == 0, "encoded_size: %d %s", rc, mqlog_errmsg(NULL));
	buf = xmalloc(*size);
	batch_encode(buf, *size, msgs, n, NOW_MS);
	batch_seal(buf, base);
	return buf;
}

/* Validate a whole batch and decode its records into @recs. */
static size_t decode(const uint8_t *buf, size_t size, struct batch_hdr *h,
		     mqlog_record *recs, size_t max)
{
	struct batch_iter it;
	const char *why = NULL;
	size_t n = 0;
	int rc;

	rc = batch_check_header(buf, size, h, &why);
	ck_assert_msg(rc == 0, "header: %s", why);
	ck_assert_uint_eq(h->length, size);
	rc = batch_check_body(buf, h, &why);
	ck_assert_msg(rc == 0, "body: %s", why);
	batch_iter_init(&it, buf, h);
	while ((rc = batch_iter_next(&it, &recs[n], &why)) == 1) {
		n++;
		ck_assert_uint_le(n, max);
	}
	ck_assert_msg(rc == 0, "iter: %s", why);
	ck_assert_uint_eq(n, h->record_count);
	return n;
}

static void assert_bytes(mqlog_bytes got, mqlog_bytes want)
{
	if (!want.data) {
		ck_assert_ptr_null(got.data);
		ck_assert_uint_eq(got.len, 0);
		return;
	}
	ck_assert_ptr_nonnull(got.data);
	ck_assert_uint_eq(got.len, want.len);
	if (want.len)
		ck_assert_mem_eq(got.data, want.data, want.len);
}

/* Check every field a record shares with the message it came from. */
static void assert_record(const mqlog_record *r, const mqlog_msg *m,
			  uint64_t offset, int64_t ts)
{
	mqlog_header hd[16];
	size_t i;

	ck_assert_uint_eq(r->offset, offset);
	ck_assert_int_eq(r->timestamp, ts);
	assert_bytes(r->key, m->key);
	assert_bytes(r->value, m->value);
	ck_assert_uint_eq(r->header_count, m->header_count);
	if (m->header_count <= 16) {
		ck_assert_int_eq(mqlog_record_headers(r, hd, 16),
				 (int)m->header_count);
		for (i = 0; i < m->header_count; i++) {
			assert_bytes(hd[i].key, m->headers[i].key);
			assert_bytes(hd[i].value, m->headers[i].value);
		}
	}
}

/* Deterministic pseudo-random numbers (xorshift64). */
static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Independent reference for the encoded sizes: plain loops, no tricks. */
static size_t ref_varint(int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	size_t n = 1;

	while (z >= 0x80) {
		z >>= 7;
		n++;
	}
	return n;
}

static size_t ref_field(mqlog_bytes b)
{
	return b.data ? ref_varint((int64_t)b.len) + b.len : ref_varint(-1);
}

static size_t ref_record(const mqlog_msg *m, size_t index, int64_t delta)
{
	size_t body, h;

	body = 1 + ref_varint(delta) + ref_varint((int64_t)index) +
	       ref_field(m->key) + ref_field(m->value) +
	       ref_varint((int64_t)m->header_count);
	for (h = 0; h < m->header_count; h++)
		body += ref_field(m->headers[h].key) +
			ref_field(m->headers[h].value);
	return ref_varint((int64_t)body) + body;
}

/*
 * Wrap raw record bytes in a header with valid checksums: what a careless
 * or malicious writer could produce.  The buffer has exactly the batch's
 * size.
 */
static uint8_t *craft(const void *records, size_t rlen, uint32_t count,
		      size_t *size)
{
	size_t n = BATCH_HEADER_SIZE + rlen;
	uint8_t *b = xmalloc(n);

	memset(b, 0, BATCH_HEADER_SIZE);
	memcpy(b + BATCH_HEADER_SIZE, records, rlen);
	mq_st32(b + 0, BATCH_MAGIC);
	mq_st32(b + 4, (uint32_t)n);
	mq_st32(b + 36, count);
	mq_st64(b + 40, 1000);
	mq_st64(b + 48, 1000);
	mq_st64(b + 24, XXH3_64bits(b + 32, n - 32));
	batch_seal(b, 100);
	*size = n;
	return b;
}

/* Recompute both checksums after a test has changed header or body. */
static void reseal(uint8_t *b, uint64_t base)
{
	uint32_t n = mq_ld32(b + 4);

	mq_st64(b + 24, XXH3_64bits(b + 32, n - 32));
	batch_seal(b, base);
}

/*
 * Run a crafted batch through the whole reader path: returns the result of
 * the last call and the number of records handed out in *n.
 */
static int read_crafted(const uint8_t *b, size_t size, size_t *n,
			const char **why)
{
	struct batch_hdr h;
	struct batch_iter it;
	mqlog_record rec;
	int rc;

	*n = 0;
	rc = batch_check_header(b, size, &h, why);
	if (rc)
		return rc;
	rc = batch_check_body(b, &h, why);
	if (rc)
		return rc;
	batch_iter_init(&it, b, &h);
	while ((rc = batch_iter_next(&it, &rec, why)) == 1)
		(*n)++;
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

START_TEST(test_roundtrip_basic)
{
	/* Keys, values and headers come back exactly, with null distinct from
	 * empty. */
	mqlog_header hs[3] = {
		{ { "h1", 2 }, { "v1", 2 } },
		{ { "h2", 2 }, { NULL, 0 } },
		{ { "", 0 }, { "", 0 } },
	};
	mqlog_msg m[4];
	mqlog_record r[4];
	struct batch_hdr h;
	size_t size, i;
	uint8_t *buf;

	m[0] = msg_kv(NULL, "hello", MQLOG_TIMESTAMP_NOW);
	m[1] = msg_kv("k1", "", MQLOG_TIMESTAMP_NOW);
	m[2] = msg_kv("", NULL, MQLOG_TIMESTAMP_NOW);
	m[3] = msg_kv("k3", "with headers", MQLOG_TIMESTAMP_NOW);
	m[3].headers = hs;
	m[3].header_count = 3;

	buf = encode(m, 4, 5000, &size);
	for (i = 0; i < 4; i++)
		r[i].partition = 7;
	ck_assert_uint_eq(decode(buf, size, &h, r, 4), 4);
	ck_assert_uint_eq(h.base_offset, 5000);
	ck_assert_uint_eq(h.record_count, 4);
	ck_assert_uint_eq(h.flags, 0);
	ck_assert_uint_eq(h.producer_id, 0);
	ck_assert_uint_eq(h.base_sequence, 0);
	for (i = 0; i < 4; i++) {
		assert_record(&r[i], &m[i], 5000 + i, NOW_MS);
		ck_assert_uint_eq(r[i].partition, 7);
	}
	ck_assert_ptr_null(r[0].headers_raw);
	ck_assert_uint_eq(r[0].headers_raw_len, 0);
	/* Byte runs point into the batch itself: zero copy. */
	for (i = 0; i < 4; i++) {
		const uint8_t *v = r[i].value.data;

		if (v)
			ck_assert(v >= buf + BATCH_HEADER_SIZE &&
				  v + r[i].value.len <= buf + size);
	}
	free(buf);
}
END_TEST

START_TEST(test_roundtrip_many)
{
	/* A batch of many records of varied shapes decodes to the same records
	 * in order. */
	enum {
		N = 5000
	};
	static mqlog_msg m[N];
	static mqlog_record r[N];
	static char data[4096];
	mqlog_header hs[2] = {
		{ { "trace", 5 }, { "abc", 3 } },
		{ { "x", 1 }, { NULL, 0 } },
	};
	struct batch_hdr h;
	size_t size, i;
	uint8_t *buf;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (char)rng();
	for (i = 0; i < N; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		if (i % 3) {
			m[i].key.data = data + (i % 97);
			m[i].key.len = i % 40;
		}
		if (i % 11) {
			m[i].value.data = data + (i % 13);
			m[i].value.len = (i * 37) % 3000;
		}
		if (i % 7 == 0) {
			m[i].headers = hs;
			m[i].header_count = 1 + i % 2;
		}
		m[i].timestamp = 1000000 + (int64_t)(i % 50) * 1000 - 20000;
	}
	buf = encode(m, N, 1u << 20, &size);
	ck_assert_uint_eq(decode(buf, size, &h, r, N), N);
	for (i = 0; i < N; i++)
		assert_record(&r[i], &m[i], (1u << 20) + i, m[i].timestamp);
	ck_assert_int_eq(h.first_timestamp, m[0].timestamp);
	ck_assert_int_eq(h.max_timestamp, 1000000 + 49 * 1000 - 20000);
	free(buf);
}
END_TEST

START_TEST(test_roundtrip_large)
{
	/* A multi-megabyte record survives encoding intact. */
	size_t vlen = 3u << 20, size, i;
	char *v = xmalloc(vlen);
	mqlog_msg m = msg_kv("big", NULL, 42);
	mqlog_record r;
	struct batch_hdr h;
	uint8_t *buf;

	for (i = 0; i < vlen; i++)
		v[i] = (char)(i * 131 + 7);
	m.value.data = v;
	m.value.len = vlen;
	ck_assert_int_eq(batch_encoded_size(&m, 1, 4u << 20, NOW_MS, &size), 0);
	buf = xmalloc(size);
	batch_encode(buf, size, &m, 1, NOW_MS);
	batch_seal(buf, 0);
	ck_assert_uint_eq(decode(buf, size, &h, &r, 1), 1);
	assert_record(&r, &m, 0, 42);
	free(buf);
	free(v);
}
END_TEST

START_TEST(test_timestamps)
{
	/* NOW records get the clock, explicit ones keep theirs, and deltas may
	 * be negative or wrap. */
	struct {
		int64_t in[4];
		int64_t out[4];
		size_t n;
		int64_t max;
	} cases[] = {
		{ { MQLOG_TIMESTAMP_NOW, MQLOG_TIMESTAMP_NOW },
		  { NOW_MS, NOW_MS },
		  2,
		  NOW_MS },
		{ { 1000, 500, 2000, -5 }, { 1000, 500, 2000, -5 }, 4, 2000 },
		{ { INT64_MAX, INT64_MIN + 1, 0 },
		  { INT64_MAX, INT64_MIN + 1, 0 },
		  3,
		  INT64_MAX },
		{ { 1000, MQLOG_TIMESTAMP_NOW, 900 },
		  { 1000, NOW_MS, 900 },
		  3,
		  NOW_MS },
		{ { MQLOG_TIMESTAMP_NOW, 1000, MQLOG_TIMESTAMP_NOW,
		    NOW_MS + 9 },
		  { NOW_MS, 1000, NOW_MS, NOW_MS + 9 },
		  4,
		  NOW_MS + 9 },
		{ { -7 }, { -7 }, 1, -7 },
	};
	size_t c, i, size;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		mqlog_msg m[4];
		mqlog_record r[4];
		struct batch_hdr h;
		uint8_t *buf;

		for (i = 0; i < cases[c].n; i++)
			m[i] = msg_kv("k", "v", cases[c].in[i]);
		buf = encode(m, cases[c].n, 9, &size);
		ck_assert_uint_eq(decode(buf, size, &h, r, 4), cases[c].n);
		ck_assert_int_eq(h.first_timestamp, cases[c].out[0]);
		ck_assert_int_eq(h.max_timestamp, cases[c].max);
		for (i = 0; i < cases[c].n; i++)
			ck_assert_int_eq(r[i].timestamp, cases[c].out[i]);
		free(buf);
	}
}
END_TEST

START_TEST(test_stream_of_batches)
{
	/* Batches laid end to end are each found from the previous one's
	 * length, as a segment scan does. */
	mqlog_msg m[2] = { msg_kv("a", "1", 1), msg_kv("b", "22", 2) };
	size_t s1, s2, pos = 0, batches = 0;
	uint8_t *b1 = encode(m, 2, 0, &s1);
	uint8_t *b2 = encode(m, 1, 2, &s2);
	uint8_t *seg = xmalloc(s1 + s2);

	memcpy(seg, b1, s1);
	memcpy(seg + s1, b2, s2);
	while (pos < s1 + s2) {
		struct batch_hdr h;
		const char *why;

		ck_assert_int_eq(batch_check_header(seg + pos, s1 + s2 - pos,
						    &h, &why),
				 0);
		ck_assert_int_eq(batch_check_body(seg + pos, &h, &why), 0);
		pos += h.length;
		batches++;
	}
	ck_assert_uint_eq(batches, 2);
	free(b1);
	free(b2);
	free(seg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Sizes and argument checks                                                */
/* ------------------------------------------------------------------------ */

START_TEST(test_golden_bytes)
{
	/* The byte image of a one-record batch is exactly the documented
	 * format. */
	static const uint8_t rec[] = { 0x10, 0x00, 0x00, 0x00, 0x02,
				       'k',  0x02, 'v',	 0x00 };
	mqlog_msg m = msg_kv("k", "v", 1000);
	uint8_t buf[77], hdr[BATCH_HEADER_SIZE];
	size_t size;

	ck_assert_int_eq(batch_encoded_size(&m, 1, 1000, NOW_MS, &size), 0);
	ck_assert_uint_eq(size, 77);
	batch_encode(buf, size, &m, 1, NOW_MS);
	ck_assert_mem_eq(buf + BATCH_HEADER_SIZE, rec, sizeof(rec));
	ck_assert_uint_eq(buf[0], 0x01);
	ck_assert_uint_eq(buf[1], 'L');
	ck_assert_uint_eq(buf[2], 'Q');
	ck_assert_uint_eq(buf[3], 'M');
	ck_assert_uint_eq(mq_ld32(buf + 4), 77);
	ck_assert_uint_eq(mq_ld64(buf + 8), 0);	 /* header checksum: at seal */
	ck_assert_uint_eq(mq_ld64(buf + 16), 0); /* base offset: at seal */
	ck_assert_uint_eq(mq_ld64(buf + 24), XXH3_64bits(buf + 32, 77 - 32));
	ck_assert_uint_eq(mq_ld16(buf + 32), 0);
	ck_assert_uint_eq(mq_ld16(buf + 34), 0);
	ck_assert_uint_eq(mq_ld32(buf + 36), 1);
	ck_assert_uint_eq(mq_ld64(buf + 40), 1000);
	ck_assert_uint_eq(mq_ld64(buf + 48), 1000);
	ck_assert_uint_eq(mq_ld64(buf + 56), 0);
	ck_assert_uint_eq(mq_ld32(buf + 64), 0);

	batch_seal(buf, 42);
	ck_assert_uint_eq(mq_ld64(buf + 16), 42);
	memcpy(hdr, buf, sizeof(hdr));
	memset(hdr + 8, 0, 8);
	ck_assert_uint_eq(mq_ld64(buf + 8), XXH3_64bits(hdr, sizeof(hdr)));
	/* Sealing again at another offset leaves the body checksum valid. */
	batch_seal(buf, 43);
	ck_assert_uint_eq(mq_ld64(buf + 24), XXH3_64bits(buf + 32, 77 - 32));
}
END_TEST

START_TEST(test_exact_size)
{
	/* batch_encoded_size() agrees with a plain reference count of every
	 * field, across varint boundaries. */
	static char data[20000];
	mqlog_header hs[3];
	size_t t, size;

	memset(data, 'x', sizeof(data));
	for (t = 0; t < 2000; t++) {
		mqlog_msg m[3];
		size_t i, want = BATCH_HEADER_SIZE;
		uint8_t *buf;

		for (i = 0; i < 3; i++) {
			size_t lens[] = { 0,   1,    63,   64,	 65,   127,
					  128, 8191, 8192, 8193, 16384 };
			memset(&m[i], 0, sizeof(m[i]));
			if (rng() % 4)
				m[i].key =
					(mqlog_bytes){ data, lens[rng() % 11] };
			if (rng() % 4)
				m[i].value = (mqlog_bytes){
					data, lens[rng() % 11] + rng() % 3
				};
			m[i].timestamp =
				i == 0 ?
					1000 :
					1000 + (int64_t)(rng() % 20000) - 10000;
		}
		hs[0] = (mqlog_header){ { data, rng() % 130 }, { NULL, 0 } };
		hs[1] = (mqlog_header){ { "", 0 }, { data, rng() % 70 } };
		hs[2] = (mqlog_header){ { data, 64 }, { data, 63 } };
		m[1].headers = hs;
		m[1].header_count = rng() % 4;
		for (i = 0; i < 3; i++)
			want += ref_record(&m[i], i,
					   m[i].timestamp - m[0].timestamp);
		ck_assert_int_eq(
			batch_encoded_size(m, 3, UINT32_MAX, NOW_MS, &size), 0);
		ck_assert_uint_eq(size, want);
		/* And encode fills exactly that many bytes (it asserts so). */
		buf = xmalloc(size);
		batch_encode(buf, size, m, 3, NOW_MS);
		free(buf);
	}
}
END_TEST

START_TEST(test_toobig_boundary)
{
	/* A record exactly at max_record is accepted and one byte more is
	 * rejected, naming the record. */
	static char data[5000];
	mqlog_msg m[3] = { msg_kv("a", "1", 5), msg_kv("b", "2", 5),
			   msg_kv("c", NULL, 5) };
	size_t two, three, rec, size = 12345;
	uint32_t limit;
	char want[128];

	m[2].value = (mqlog_bytes){ data, 3000 };
	ck_assert_int_eq(batch_encoded_size(m, 2, UINT32_MAX, NOW_MS, &two), 0);
	ck_assert_int_eq(batch_encoded_size(m, 3, UINT32_MAX, NOW_MS, &three),
			 0);
	rec = three - two;
	limit = (uint32_t)rec;

	ck_assert_int_eq(batch_encoded_size(m, 3, limit, NOW_MS, &size), 0);
	ck_assert_uint_eq(size, three);

	/* One byte longer than the limit. */
	m[2].value.len++;
	size = 12345;
	ck_assert_int_eq(batch_encoded_size(m, 3, limit, NOW_MS, &size),
			 MQLOG_ETOOBIG);
	ck_assert_uint_eq(size, 12345);
	snprintf(want, sizeof(want),
		 "record 2 encodes to %zu bytes, over the limit of %u bytes",
		 rec + 1, limit);
	/* The message starts with the record, its size and the limit. */
	ck_assert_msg(strncmp(mqlog_errmsg(NULL), want, strlen(want)) == 0,
		      "message '%s'", mqlog_errmsg(NULL));

	/* The same record against a limit one smaller. */
	m[2].value.len--;
	ck_assert_int_eq(batch_encoded_size(m, 3, limit - 1, NOW_MS, &size),
			 MQLOG_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "record 2 "));
}
END_TEST

START_TEST(test_toobig_absurd)
{
	/* Lengths no batch could hold, or a batch over the format's limit, are
	 * ETOOBIG without reading the data. */
	static char mib[1u << 20];
	enum {
		N = 2100
	};
	static mqlog_msg m[N];
	mqlog_header hd = { { "k", SIZE_MAX / 2 }, { NULL, 0 } };
	mqlog_msg one = msg_kv("k", "v", 1);
	size_t size, i;

	one.value.len = SIZE_MAX;
	ck_assert_int_eq(batch_encoded_size(&one, 1, UINT32_MAX, NOW_MS, &size),
			 MQLOG_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "record 0"));
	one = msg_kv("k", "v", 1);
	one.headers = &hd;
	one.header_count = 1;
	ck_assert_int_eq(batch_encoded_size(&one, 1, UINT32_MAX, NOW_MS, &size),
			 MQLOG_ETOOBIG);
	one.header_count = SIZE_MAX;
	ck_assert_int_eq(batch_encoded_size(&one, 1, UINT32_MAX, NOW_MS, &size),
			 MQLOG_ETOOBIG);

	/* 2100 records of 1 MiB each: every record fits, the batch does not. */
	for (i = 0; i < N; i++) {
		m[i] = msg_kv(NULL, NULL, 1);
		m[i].value = (mqlog_bytes){ mib, sizeof(mib) };
	}
	ck_assert_int_eq(batch_encoded_size(m, N, 2u << 20, NOW_MS, &size),
			 MQLOG_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "batch of 2100"));
}
END_TEST

START_TEST(test_einval)
{
	/* Malformed calls are MQLOG_EINVAL and leave the output alone. */
	mqlog_header bad_key = { { NULL, 0 }, { "v", 1 } };
	mqlog_header bad_val = { { "k", 1 }, { NULL, 3 } };
	mqlog_msg m = msg_kv("k", "v", 1);
	size_t size = 999;

	ck_assert_int_eq(batch_encoded_size(&m, 0, 100, NOW_MS, &size),
			 MQLOG_EINVAL);
	ck_assert_int_eq(batch_encoded_size(NULL, 1, 100, NOW_MS, &size),
			 MQLOG_EINVAL);

	m.key = (mqlog_bytes){ NULL, 3 };
	ck_assert_int_eq(batch_encoded_size(&m, 1, 100, NOW_MS, &size),
			 MQLOG_EINVAL);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "record 0"));

	m = msg_kv("k", NULL, 1);
	m.value.len = 3;
	ck_assert_int_eq(batch_encoded_size(&m, 1, 100, NOW_MS, &size),
			 MQLOG_EINVAL);

	m = msg_kv("k", "v", 1);
	m.headers = &bad_key;
	m.header_count = 1;
	ck_assert_int_eq(batch_encoded_size(&m, 1, 100, NOW_MS, &size),
			 MQLOG_EINVAL);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "null key"));

	m.headers = &bad_val;
	ck_assert_int_eq(batch_encoded_size(&m, 1, 100, NOW_MS, &size),
			 MQLOG_EINVAL);

	m.headers = NULL;
	m.header_count = 2;
	ck_assert_int_eq(batch_encoded_size(&m, 1, 100, NOW_MS, &size),
			 MQLOG_EINVAL);
	ck_assert_uint_eq(size, 999);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Damage                                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(test_every_bit_flip)
{
	/* Flipping any single bit of a batch makes the header or the body check
	 * fail. */
	mqlog_header hd = { { "h", 1 }, { NULL, 0 } };
	mqlog_msg m[2] = { msg_kv("key", "value", 77),
			   msg_kv(NULL, "another value", 80) };
	size_t size, bit;
	uint8_t *orig, *b;

	m[1].headers = &hd;
	m[1].header_count = 1;
	orig = encode(m, 2, 123456789, &size);
	b = xmalloc(size);
	for (bit = 0; bit < size * 8; bit++) {
		struct batch_hdr h;
		const char *why = NULL;
		int rc;

		memcpy(b, orig, size);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = batch_check_header(b, size, &h, &why);
		if (rc == 0)
			rc = batch_check_body(b, &h, &why);
		ck_assert_msg(rc == MQLOG_ECORRUPT, "bit %zu not detected",
			      bit);
		ck_assert_ptr_nonnull(why);
	}
	free(b);
	free(orig);
}
END_TEST

START_TEST(test_every_truncation)
{
	/* A batch cut short at any length is reported as truncated, without
	 * reading past the cut. */
	mqlog_msg m[2] = { msg_kv("key", "value", 77), msg_kv("k2", "v2", 9) };
	size_t size, n;
	uint8_t *orig = encode(m, 2, 0, &size);

	for (n = 0; n < size; n++) {
		uint8_t *b = xmalloc(n);
		struct batch_hdr h;
		const char *why = NULL;

		memcpy(b, orig, n);
		ck_assert_int_eq(batch_check_header(b, n, &h, &why),
				 MQLOG_ECORRUPT);
		ck_assert_str_eq(why, "truncated batch");
		free(b);
	}
	free(orig);
}
END_TEST

START_TEST(test_zeroes_rejected)
{
	/* Zeroed bytes, as in preallocated space, never pass as a batch. */
	static const uint8_t zero[4096];
	size_t avail[] = { 68, 75, 100, 4096 };
	size_t i;

	for (i = 0; i < 4; i++) {
		struct batch_hdr h;
		const char *why;

		ck_assert_int_eq(batch_check_header(zero, avail[i], &h, &why),
				 MQLOG_ECORRUPT);
		ck_assert_str_eq(why, "bad batch magic");
	}
}
END_TEST

START_TEST(test_garbage_rejected)
{
	/* Random bytes are rejected, even when they start with the magic. */
	size_t size = 4096, t, i;
	uint8_t *b = xmalloc(size);
	mqlog_msg m = msg_kv("k", "v", 1);
	uint8_t *good;
	size_t gsize;

	for (t = 0; t < 2000; t++) {
		struct batch_hdr h;
		const char *why;

		for (i = 0; i < size; i++)
			b[i] = (uint8_t)rng();
		if (t % 2)
			mq_st32(b, BATCH_MAGIC);
		if (t % 4 == 3)
			mq_st32(b + 4, (uint32_t)(100 + rng() % 3000));
		ck_assert_int_eq(batch_check_header(b, size, &h, &why),
				 MQLOG_ECORRUPT);
	}

	/* A valid header over a garbage body fails the body checksum. */
	good = encode(&m, 1, 0, &gsize);
	for (i = BATCH_HEADER_SIZE; i < gsize; i++)
		good[i] = (uint8_t)rng();
	{
		struct batch_hdr h;
		const char *why;

		ck_assert_int_eq(batch_check_header(good, gsize, &h, &why), 0);
		ck_assert_int_eq(batch_check_body(good, &h, &why),
				 MQLOG_ECORRUPT);
		ck_assert_str_eq(why, "body checksum mismatch");
	}
	free(good);
	free(b);
}
END_TEST

START_TEST(test_header_fields)
{
	/* Header fields a reader cannot honour are rejected even under a valid
	 * checksum. */
	struct {
		unsigned off, width;
		uint64_t value;
		const char *why;
	} cases[] = {
		{ 0, 4, 0x4D514C02u, "unsupported batch format version" },
		{ 0, 4, 0x12345678u, "bad batch magic" },
		{ 4, 4, 74, "bad batch length" },
		{ 4, 4, 0x7FFFFFF1u, "bad batch length" },
		{ 4, 4, 10000, "truncated batch" },
		{ 32, 2, 1, "unsupported batch flags" },
		{ 34, 2, 1, "nonzero reserved field" },
		{ 36, 4, 0, "batch with no records" },
		{ 36, 4, 3, "record count does not fit the batch" },
	};
	mqlog_msg m = msg_kv("k", "v", 1);
	size_t size, c;
	uint8_t *orig = encode(&m, 1, 0, &size);
	uint8_t *b = xmalloc(size);

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct batch_hdr h;
		const char *why = NULL;

		memcpy(b, orig, size);
		if (cases[c].width == 2)
			mq_st16(b + cases[c].off, (uint16_t)cases[c].value);
		else
			mq_st32(b + cases[c].off, (uint32_t)cases[c].value);
		/* Recompute the header checksum over the new value. */
		batch_seal(b, 0);
		ck_assert_int_eq(batch_check_header(b, size, &h, &why),
				 MQLOG_ECORRUPT);
		ck_assert_str_eq(why, cases[c].why);
	}
	/* An untouched header checksum catches the same change first. */
	memcpy(b, orig, size);
	mq_st16(b + 32, 1);
	{
		struct batch_hdr h;
		const char *why;

		ck_assert_int_eq(batch_check_header(b, size, &h, &why),
				 MQLOG_ECORRUPT);
		ck_assert_str_eq(why, "header checksum mismatch");
	}
	free(b);
	free(orig);
}
END_TEST

START_TEST(test_crafted_records)
{
	/* Records that lie about their lengths are rejected under valid
	 * checksums, without out-of-bounds reads. */
	static const struct {
		const char *name;
		uint8_t bytes[32];
		size_t len;
		uint32_t count;
		const char *why;
	} cases[] = {
		{ "valid", { 0x10, 0, 0, 0, 2, 'k', 2, 'v', 0 }, 9, 1, NULL },
		{ "overlong length varint",
		  { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0 },
		  8,
		  1,
		  "malformed record length" },
		{ "length varint over 32 bits",
		  { 0x80, 0x80, 0x80, 0x80, 0x7F, 0, 0, 0 },
		  8,
		  1,
		  "malformed record length" },
		{ "length varint cut by the batch end",
		  { 0x22, 0, 0, 0, 2, 'k', 0x14, '0', '1', '2', '3', '4', '5',
		    '6', '7', '8', '9', 0, 0x80 },
		  19,
		  2,
		  "malformed record length" },
		{ "negative length",
		  { 0x01, 0, 0, 0, 1, 1, 0 },
		  7,
		  1,
		  "bad record length" },
		{ "length past the batch",
		  { 0x7E, 0, 0, 0, 1, 1, 0 },
		  7,
		  1,
		  "record runs past the end of the batch" },
		{ "length shorter than fields",
		  { 0x0C, 0, 0, 0, 2, 'k', 2, 'v', 0 },
		  9,
		  1,
		  "bad value length" },
		{ "length longer than fields",
		  { 0x12, 0, 0, 0, 2, 'k', 2, 'v', 0, 0 },
		  10,
		  1,
		  "record length does not match its fields" },
		{ "attributes set",
		  { 0x0C, 1, 0, 0, 1, 1, 0 },
		  7,
		  1,
		  "unsupported record attributes" },
		{ "timestamp varint runs past the record",
		  { 0x0C, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0 },
		  9,
		  1,
		  "malformed timestamp delta" },
		{ "varlong over 64 bits",
		  { 0x1E, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
		    0xFF, 0x02, 0, 1, 1, 0 },
		  16,
		  1,
		  "malformed timestamp delta" },
		{ "negative offset delta",
		  { 0x0C, 0, 0, 1, 1, 1, 0 },
		  7,
		  1,
		  "bad offset delta" },
		{ "key length -2",
		  { 0x0C, 0, 0, 0, 3, 1, 0 },
		  7,
		  1,
		  "bad key length" },
		{ "key past the record",
		  { 0x0C, 0, 0, 0, 0x20, 1, 0, 0, 0 },
		  9,
		  1,
		  "bad key length" },
		{ "value past the record",
		  { 0x0E, 0, 0, 0, 1, 8, 'a', 0, 0 },
		  9,
		  1,
		  "bad value length" },
		{ "header count past the record",
		  { 0x0C, 0, 0, 0, 1, 1, 0x7E },
		  7,
		  1,
		  "malformed record headers" },
		{ "negative header count",
		  { 0x0C, 0, 0, 0, 1, 1, 3 },
		  7,
		  1,
		  "bad header count" },
		{ "null header key",
		  { 0x10, 0, 0, 0, 1, 1, 2, 1, 1 },
		  9,
		  1,
		  "malformed record headers" },
		{ "header value past the record",
		  { 0x12, 0, 0, 0, 1, 1, 2, 2, 'h', 8 },
		  10,
		  1,
		  "malformed record headers" },
		{ "trailing byte after the last record",
		  { 0x10, 0, 0, 0, 2, 'k', 2, 'v', 0, 0 },
		  10,
		  1,
		  "trailing bytes after the last record" },
		{ "fewer records than counted",
		  { 0x1C, 0, 0, 0, 1, 0x10, '0', '1', '2', '3', '4', '5', '6',
		    '7', 0 },
		  15,
		  2,
		  "batch ends before its last record" },
	};
	size_t c;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t size, n;
		const char *why = NULL;
		uint8_t *b = craft(cases[c].bytes, cases[c].len, cases[c].count,
				   &size);
		int rc = read_crafted(b, size, &n, &why);

		if (!cases[c].why) {
			ck_assert_msg(rc == 0, "%s: %s", cases[c].name, why);
			ck_assert_uint_eq(n, cases[c].count);
		} else {
			ck_assert_msg(rc == MQLOG_ECORRUPT, "%s: rc %d",
				      cases[c].name, rc);
			ck_assert_msg(why && strcmp(why, cases[c].why) == 0,
				      "%s: why '%s'", cases[c].name, why);
			/* No record of a batch whose last record is malformed
			 * escapes. */
			if (cases[c].count == 1)
				ck_assert_uint_eq(n, 0);
		}
		free(b);
	}
}
END_TEST

START_TEST(test_iter_fuzz)
{
	/* Randomly damaged records under recomputed checksums never crash the
	 * decoder. */
	mqlog_header hd[2] = { { { "h", 1 }, { NULL, 0 } },
			       { { "hk", 2 }, { "hv", 2 } } };
	mqlog_msg m[3] = { msg_kv("key", "value", 77), msg_kv(NULL, "", 80),
			   msg_kv("k", NULL, 60) };
	size_t size, t, ok = 0, bad = 0;
	uint8_t *orig;

	m[1].headers = hd;
	m[1].header_count = 2;
	orig = encode(m, 3, 10, &size);
	for (t = 0; t < 20000; t++) {
		uint8_t *b = xmalloc(size);
		size_t n, k, flips = 1 + rng() % 3;
		const char *why;

		memcpy(b, orig, size);
		for (k = 0; k < flips; k++)
			b[BATCH_HEADER_SIZE +
			  rng() % (size - BATCH_HEADER_SIZE)] = (uint8_t)rng();
		reseal(b, 10);
		if (read_crafted(b, size, &n, &why) == 0)
			ok++;
		else
			bad++;
		free(b);
	}
	ck_assert_uint_gt(bad, 0);
	ck_assert_uint_eq(ok + bad, 20000);
	free(orig);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Headers                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(test_headers_decode_bounds)
{
	/* Header decoding stops at the end of its bytes, honours max and
	 * rejects counts that disagree. */
	mqlog_header hs[3] = {
		{ { "alpha", 5 }, { "1", 1 } },
		{ { "beta", 4 }, { NULL, 0 } },
		{ { "gamma", 5 }, { "333", 3 } },
	};
	mqlog_header out[4];
	mqlog_msg m = msg_kv("k", "v", 1);
	mqlog_record r, copy;
	struct batch_hdr h;
	size_t size, n;
	uint8_t *buf;

	m.headers = hs;
	m.header_count = 3;
	buf = encode(&m, 1, 0, &size);
	ck_assert_uint_eq(decode(buf, size, &h, &r, 1), 1);
	ck_assert_uint_eq(r.header_count, 3);

	ck_assert_int_eq(
		headers_decode(r.headers_raw, r.headers_raw_len, 3, out, 4), 3);
	assert_bytes(out[1].value, NUL);
	assert_bytes(out[2].value, B("333"));

	/* max below the count: only max are written. */
	memset(out, 0xAB, sizeof(out));
	ck_assert_int_eq(
		headers_decode(r.headers_raw, r.headers_raw_len, 3, out, 1), 1);
	assert_bytes(out[0].key, B("alpha"));
	ck_assert_uint_eq(((const uint8_t *)&out[1])[0], 0xAB);
	ck_assert_int_eq(headers_decode(r.headers_raw, r.headers_raw_len, 3,
					NULL, 0),
			 0);

	/* Every truncation, from an exact-size copy. */
	for (n = 0; n < r.headers_raw_len; n++) {
		uint8_t *t = xmalloc(n);

		memcpy(t, r.headers_raw, n);
		ck_assert_int_eq(headers_decode(t, n, 3, out, 4),
				 MQLOG_ECORRUPT);
		free(t);
	}
	/* Counts that disagree with the bytes. */
	ck_assert_int_eq(headers_decode(r.headers_raw, r.headers_raw_len, 2,
					out, 4),
			 MQLOG_ECORRUPT);
	ck_assert_int_eq(headers_decode(r.headers_raw, r.headers_raw_len, 4,
					out, 4),
			 MQLOG_ECORRUPT);
	ck_assert_int_eq(headers_decode(r.headers_raw, r.headers_raw_len,
					UINT32_MAX, out, 4),
			 MQLOG_ECORRUPT);
	ck_assert_int_eq(headers_decode(NULL, 0, 0, out, 4), 0);
	ck_assert_int_eq(headers_decode(NULL, 0, 1, out, 4), MQLOG_ECORRUPT);

	/* The public wrapper reports errors with a message. */
	ck_assert_int_eq(mqlog_record_headers(NULL, out, 4), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_record_headers(&r, NULL, 4), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_record_headers(&r, NULL, 0), 0);
	copy = r;
	copy.headers_raw_len--;
	ck_assert_int_eq(mqlog_record_headers(&copy, out, 4), MQLOG_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "malformed headers"));
	free(buf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Partitioner                                                              */
/* ------------------------------------------------------------------------ */

START_TEST(test_partition_vectors)
{
	/* The partitioner is XXH3-64 with seed 0 modulo the partition count, so
	 * a key's partition never changes. */
	uint32_t ns[] = { 1, 2, 3, 16, 1000, MQLOG_MAX_PARTITIONS };
	size_t i;

	/* xxHash's published hash of the empty input pins the algorithm. */
	ck_assert_uint_eq(record_key_hash("", 0), UINT64_C(0x2D06800538D394C2));
	ck_assert_uint_eq(record_key_hash(NULL, 0), record_key_hash("", 0));
	ck_assert_uint_eq(record_key_hash("hello", 5), XXH3_64bits("hello", 5));
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		ck_assert_uint_eq(mqlog_partition_for_key("hello", 5, ns[i]),
				  XXH3_64bits("hello", 5) % ns[i]);
		ck_assert_uint_eq(mqlog_partition_for_key(NULL, 0, ns[i]),
				  UINT64_C(0x2D06800538D394C2) % ns[i]);
		ck_assert_uint_lt(mqlog_partition_for_key("k", 1, ns[i]),
				  ns[i]);
	}
	ck_assert_uint_eq(mqlog_partition_for_key("hello", 5, 0), 0);
}
END_TEST

START_TEST(test_partition_distribution)
{
	/* Keys spread evenly: each of 16 partitions gets within 10% of its
	 * share of 100000 keys. */
	uint32_t counts[16] = { 0 };
	char key[32];
	int i, len;

	for (i = 0; i < 100000; i++) {
		len = snprintf(key, sizeof(key), "user-%d", i);
		counts[mqlog_partition_for_key(key, (size_t)len, 16)]++;
	}
	for (i = 0; i < 16; i++) {
		ck_assert_uint_gt(counts[i], 6250 * 9 / 10);
		ck_assert_uint_lt(counts[i], 6250 * 11 / 10);
	}
}
END_TEST

START_TEST(test_one_pass_encoder)
{
	/* The append path's one-pass encoder writes exactly the bytes of the
	 * two-pass encoder, within the bound, and refuses what it refuses. */
	static char data[20000];
	mqlog_header hs[3];
	size_t t, size, bound, got;

	memset(data, 'y', sizeof(data));
	for (t = 0; t < 2000; t++) {
		mqlog_msg m[3];
		size_t i;
		uint8_t *a, *b;

		for (i = 0; i < 3; i++) {
			size_t lens[] = { 0,   1,    63,   64,	 65,   127,
					  128, 8191, 8192, 8193, 16384 };
			memset(&m[i], 0, sizeof(m[i]));
			if (rng() % 4)
				m[i].key =
					(mqlog_bytes){ data, lens[rng() % 11] };
			if (rng() % 4)
				m[i].value = (mqlog_bytes){
					data, lens[rng() % 11] + rng() % 3
				};
			m[i].timestamp = rng() % 3 ? MQLOG_TIMESTAMP_NOW :
						     (int64_t)(rng() % 99999);
		}
		hs[0] = (mqlog_header){ { data, rng() % 130 }, { NULL, 0 } };
		hs[1] = (mqlog_header){ { "", 0 }, { data, rng() % 70 } };
		hs[2] = (mqlog_header){ { data, 64 }, { data, 63 } };
		m[2].headers = hs;
		m[2].header_count = rng() % 4;
		ck_assert_int_eq(
			batch_encoded_size(m, 3, UINT32_MAX, NOW_MS, &size), 0);
		ck_assert_int_eq(batch_size_bound(m, 3, &bound), 0);
		ck_assert_uint_ge(bound, size);
		a = xmalloc(size);
		b = xmalloc(bound);
		batch_encode(a, size, m, 3, NOW_MS);
		ck_assert_int_eq(batch_encode_checked(b, bound, m, 3,
						      UINT32_MAX, NOW_MS, &got),
				 0);
		ck_assert_uint_eq(got, size);
		ck_assert(memcmp(a, b, size) == 0);
		free(a);
		free(b);
	}

	/* Same limits as the exact path: a record at the limit passes, one
	 * byte over is MQLOG_ETOOBIG; bad descriptions are MQLOG_EINVAL. */
	mqlog_msg one = msg_kv("k", NULL, 5);
	one.value = (mqlog_bytes){ data, 100 };
	ck_assert_int_eq(batch_encoded_size(&one, 1, UINT32_MAX, NOW_MS, &size),
			 0);
	size -= BATCH_HEADER_SIZE; /* the record's own size */
	ck_assert_int_eq(batch_size_bound(&one, 1, &bound), 0);
	uint8_t *buf = xmalloc(bound);
	ck_assert_int_eq(batch_encode_checked(buf, bound, &one, 1,
					      (uint32_t)size, NOW_MS, &got),
			 0);
	ck_assert_int_eq(batch_encode_checked(buf, bound, &one, 1,
					      (uint32_t)size - 1, NOW_MS, &got),
			 MQLOG_ETOOBIG);
	one.key = (mqlog_bytes){ NULL, 3 };
	ck_assert_int_eq(batch_encode_checked(buf, bound, &one, 1, UINT32_MAX,
					      NOW_MS, &got),
			 MQLOG_EINVAL);
	free(buf);
	/* Lengths whose sum could wrap make the bound refuse. */
	one.key = (mqlog_bytes){ data, SIZE_MAX / 2 };
	one.value = (mqlog_bytes){ data, SIZE_MAX / 2 };
	ck_assert_int_eq(batch_size_bound(&one, 1, &bound), -1);
	ck_assert_int_eq(batch_size_bound(NULL, 1, &bound), -1);
	ck_assert_int_eq(batch_size_bound(&one, 0, &bound), -1);
}
END_TEST

static Suite *record_suite(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("format");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_roundtrip_basic);
	tcase_add_test(tc, test_roundtrip_many);
	tcase_add_test(tc, test_roundtrip_large);
	tcase_add_test(tc, test_timestamps);
	tcase_add_test(tc, test_stream_of_batches);
	tcase_add_test(tc, test_golden_bytes);
	tcase_add_test(tc, test_exact_size);
	tcase_add_test(tc, test_one_pass_encoder);
	tcase_add_test(tc, test_toobig_boundary);
	tcase_add_test(tc, test_toobig_absurd);
	tcase_add_test(tc, test_einval);
	tcase_add_test(tc, test_every_bit_flip);
	tcase_add_test(tc, test_every_truncation);
	tcase_add_test(tc, test_zeroes_rejected);
	tcase_add_test(tc, test_garbage_rejected);
	tcase_add_test(tc, test_header_fields);
	tcase_add_test(tc, test_crafted_records);
	tcase_add_test(tc, test_iter_fuzz);
	tcase_add_test(tc, test_headers_decode_bounds);
	tcase_add_test(tc, test_partition_vectors);
	tcase_add_test(tc, test_partition_distribution);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(record_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
