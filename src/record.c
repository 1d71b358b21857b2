/*
 * record.c - record batches: the on-disk format, its encoder, its decoder
 * and its checksums.
 *
 * A segment file is a sequence of record batches laid end to end.  A batch
 * is the unit of append, of checksum and of index entry: it is written
 * whole by one producer call and validated whole before any of its records
 * is handed to a reader.  This file is the only place that knows the byte
 * layout; docs/FORMAT.md repeats it for users of the tool.
 *
 * BATCH HEADER
 *
 * Every integer in the header is little-endian.  The header is 68 bytes:
 *
 *     0: u32 magic_version    0x4D514C01: "MQL" and format version 1
 *     4: u32 length           bytes of the whole batch, header included
 *     8: u64 header_checksum  XXH3-64 of bytes [0, 68) with bytes [8, 16)
 *                             taken as zero
 *    16: u64 base_offset      offset of the first record
 *    24: u64 body_checksum    XXH3-64 of bytes [32, length)
 *    32: u16 flags            codec, transactional, control ...: 0 today
 *    34: u16 reserved         0
 *    36: u32 record_count     records in the batch, >= 1
 *    40: i64 first_timestamp  timestamp of the first record, ms since epoch
 *    48: i64 max_timestamp    largest timestamp of any record in the batch
 *    56: u64 producer_id      0 when the producer is not idempotent
 *    64: u32 base_sequence    0 when the producer is not idempotent
 *
 * The two checksums split the work so that the expensive one stays outside
 * the partition's append lock: the producer encodes the batch and hashes
 * the body (everything after body_checksum, so the remaining header fields
 * are covered too) with no lock held; once the append lock gives it an
 * offset, it stores base_offset and hashes only the 68 header bytes.
 * Between them the two checksums cover every byte of the batch, including
 * the length and the base offset that Kafka's CRC leaves unprotected.
 *
 * RECORDS
 *
 * record_count records follow the header back to back, each encoded as in
 * Kafka's record format v2.  "varint" is a zigzag-encoded signed 32-bit
 * integer, "varlong" a zigzag-encoded signed 64-bit integer, both in
 * base-128 groups of 7 bits, least significant group first, the high bit
 * of each byte set when another byte follows:
 *
 *     varint  length          bytes of the record after this field
 *     int8    attributes      0
 *     varlong timestamp_delta timestamp - first_timestamp (mod 2^64)
 *     varint  offset_delta    offset - base_offset: the record's index
 *     varint  key_length      -1 for a null key
 *     bytes   key
 *     varint  value_length    -1 for a null value
 *     bytes   value
 *     varint  header_count    >= 0
 *     header_count times:
 *       varint  header_key_length    >= 0 (a header key is never null)
 *       bytes   header_key
 *       varint  header_value_length  -1 for a null value
 *       bytes   header_value
 *
 * A writer emits the shortest encoding of every varint (the clock is read
 * once per batch, before its size is computed).  Readers accept any varint
 * of at most 5 bytes and any varlong of at most 10 bytes whose value fits
 * in 32 or 64 bits.
 *
 * VALIDITY
 *
 * A batch at byte position P of a file of S bytes is valid when, in this
 * order (the first rule that fails names the problem):
 *
 *   1. S - P >= 68 (else "truncated batch");
 *   2. magic_version is 0x4D514C01 (zeroed or garbage bytes stop here);
 *   3. the header checksum matches;
 *   4. 75 <= length <= 0x7FFFFFF0, and P + length <= S (else "truncated
 *      batch": a torn tail);
 *   5. flags and reserved are 0, record_count >= 1 and the records can fit
 *      in length (each record takes at least 7 bytes);
 *   6. the body checksum matches;
 *   7. the records parse: every varint and every length stays inside the
 *      record and the batch, each record's declared length is exactly the
 *      bytes its fields use, attributes are 0, and the batch holds exactly
 *      record_count records with no byte left over.
 *
 * The header checksum is checked before the length is trusted so that a
 * damaged length is reported as damage rather than as a torn tail.  The
 * records are parsed with full bounds checks even though the checksum
 * passed: the checksum detects accidents, not a crafted file.
 *
 * CHECKSUM
 *
 * XXH3-64 with seed 0 (xxHash 0.8, XXH3_64bits()), stored little-endian.
 * The default partitioner hashes keys with the same function.
 */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include <xxhash.h>

#include "internal.h"

/* Byte offsets of the header fields (see the table above). */
#define OFF_MAGIC	  0
#define OFF_LENGTH	  4
#define OFF_HEADER_CSUM	  8
#define OFF_BASE_OFFSET	  16
#define OFF_BODY_CSUM	  24
#define OFF_FLAGS	  32
#define OFF_RESERVED	  34
#define OFF_COUNT	  36
#define OFF_FIRST_TS	  40
#define OFF_MAX_TS	  48
#define OFF_PRODUCER_ID	  56
#define OFF_BASE_SEQUENCE 64

_Static_assert(OFF_BASE_SEQUENCE + 4 == BATCH_HEADER_SIZE,
	       "header table and BATCH_HEADER_SIZE disagree");
_Static_assert(OFF_BODY_CSUM + 8 == BATCH_BODY_CSUM_START,
	       "the body checksum covers everything after itself");

/*
 * The smallest record: a one-byte length and six one-byte fields
 * (attributes, timestamp delta, offset delta, null key, null value, no
 * headers).  It bounds record_count by the batch length.
 */
#define RECORD_MIN_SIZE 7u
#define RECORD_MIN_BODY 6u

/* The largest record any batch can hold. */
#define RECORD_MAX_SIZE (BATCH_MAX_LENGTH - BATCH_HEADER_SIZE)

/* ======================================================================== */
/* Checksums                                                                */
/* ======================================================================== */

/*
 * XXH3_64bits() in a distribution's libxxhash is built for the baseline
 * instruction set (SSE2 on x86-64).  Debian's also exports
 * XXH3_64bits_dispatch(), which computes the same hash with the widest
 * vector unit of the running CPU: on an AVX2 machine it hashes a batch
 * about four times faster, and the body hash is most of the cost of
 * encoding and of validating a batch.  The reference is weak so that a
 * libxxhash without the dispatcher still links, and we fall back.
 */
#if defined(__x86_64__) && defined(__ELF__)
extern XXH64_hash_t XXH3_64bits_dispatch(const void *input, size_t len)
	__attribute__((weak));
#define HAVE_XXH3_DISPATCH 1
#endif

static inline uint64_t csum(const void *p, size_t len)
{
#ifdef HAVE_XXH3_DISPATCH
	if (XXH3_64bits_dispatch)
		return XXH3_64bits_dispatch(p, len);
#endif
	return XXH3_64bits(p, len);
}

/* ======================================================================== */
/* Varints                                                                  */
/* ======================================================================== */

/*
 * Lengths, counts and offset deltas are never negative, except the -1 of a
 * null key or value: in zigzag form a length L is 2L and null is 1.  So the
 * encoder works with already-zigzagged unsigned values and the decoder
 * checks parity instead of converting back to a signed integer.
 */
#define ZZ_NULL 1u

static inline uint64_t zz64(uint64_t v)
{
	return (v << 1) ^ (0 - (v >> 63));
}

static inline uint64_t unzz64(uint64_t v)
{
	return (v >> 1) ^ (0 - (v & 1));
}

/*
 * Bytes in the base-128 encoding of @v (1 to 10).  The records of a batch
 * tend to have similar sizes, so the branches predict well and beat the
 * bit-scan arithmetic (slow on some CPUs) for the common small values.
 */
static inline unsigned varint_size(uint64_t v)
{
	unsigned bit;

	if (MQ_LIKELY(v < 0x80))
		return 1;
	if (v < 0x4000)
		return 2;
	bit = 63u - (unsigned)__builtin_clzll(v);
	return (bit * 9u + 73u) >> 6;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	if (MQ_LIKELY(v < 0x80)) {
		*p = (uint8_t)v;
		return p + 1;
	}
	if (v < 0x4000) {
		p[0] = (uint8_t)(v | 0x80);
		p[1] = (uint8_t)(v >> 7);
		return p + 2;
	}
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/*
 * Decode a varint of at most 32 bits (5 bytes) between *pp and @end.  On
 * success advances *pp and returns 0; returns -1 when the bytes run out or
 * the value does not fit, leaving *pp alone.
 */
static int get_varint32_slow(const uint8_t **pp, const uint8_t *end,
			     uint32_t *out)
{
	const uint8_t *p = *pp;
	uint32_t v = 0;
	unsigned shift;

	for (shift = 0; shift <= 28; shift += 7) {
		uint8_t c;

		if (p == end)
			return -1;
		c = *p++;
		if (shift == 28 && c > 0x0F)
			return -1;
		v |= (uint32_t)(c & 0x7F) << shift;
		if (!(c & 0x80)) {
			*out = v;
			*pp = p;
			return 0;
		}
	}
	return -1;
}

static inline int get_varint32(const uint8_t **pp, const uint8_t *end,
			       uint32_t *out)
{
	const uint8_t *p = *pp;

	/*
	 * Most fields of a record fit in one byte, and the lengths of records
	 * and values under 8 KiB in two.
	 */
	if (MQ_LIKELY(p < end)) {
		if (p[0] < 0x80) {
			*out = p[0];
			*pp = p + 1;
			return 0;
		}
		if (end - p >= 2 && p[1] < 0x80) {
			*out = (uint32_t)(p[0] & 0x7F) | (uint32_t)p[1] << 7;
			*pp = p + 2;
			return 0;
		}
	}
	return get_varint32_slow(pp, end, out);
}

/* As get_varint32(), for a varlong of at most 64 bits (10 bytes). */
static int get_varint64(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	unsigned shift;

	if (MQ_LIKELY(p < end && *p < 0x80)) {
		*out = *p;
		*pp = p + 1;
		return 0;
	}
	for (shift = 0; shift <= 63; shift += 7) {
		uint8_t c;

		if (p == end)
			return -1;
		c = *p++;
		if (shift == 63 && c > 0x01)
			return -1;
		v |= (uint64_t)(c & 0x7F) << shift;
		if (!(c & 0x80)) {
			*out = v;
			*pp = p;
			return 0;
		}
	}
	return -1;
}

/*
 * Decode a nullable length and the bytes it announces, which must end at
 * or before @end.  Returns 0 or -1; *pp advances past the bytes.
 */
static inline int get_bytes(const uint8_t **pp, const uint8_t *end,
			    mqlog_bytes *out, bool nullable)
{
	const uint8_t *p = *pp;
	uint32_t z;

	if (get_varint32(&p, end, &z))
		return -1;
	if (z & 1) {
		if (z != ZZ_NULL || !nullable)
			return -1;
		out->data = NULL;
		out->len = 0;
		*pp = p;
		return 0;
	}
	z >>= 1;
	if (z > (size_t)(end - p))
		return -1;
	out->data = p;
	out->len = z;
	*pp = p + z;
	return 0;
}

/* ======================================================================== */
/* Encoding                                                                 */
/* ======================================================================== */

/* Bytes of a length-prefixed field (length varint plus data). */
static inline uint64_t field_size(const mqlog_bytes *b)
{
	if (!b->data)
		return 1;
	return varint_size((uint64_t)b->len << 1) + b->len;
}

/*
 * Copy @n bytes.  Keys and values are mostly small, where a call to the
 * library's memcpy costs more than the copy itself: copy them inline with
 * 16-byte moves, the last one overlapping the previous instead of running
 * past the end (the buffer is exactly the batch's size).
 */
static inline void copy_bytes(uint8_t *d, const uint8_t *s, size_t n)
{
	size_t i;

	if (n > 256) {
		memcpy(d, s, n);
	} else if (n >= 16) {
		for (i = 0; i + 16 < n; i += 16)
			memcpy(d + i, s + i, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else {
		for (i = 0; i < n; i++)
			d[i] = s[i];
	}
}

static inline uint8_t *put_field(uint8_t *p, const mqlog_bytes *b)
{
	if (!b->data) {
		*p++ = ZZ_NULL;
		return p;
	}
	p = put_varint(p, (uint64_t)b->len << 1);
	copy_bytes(p, b->data, b->len);
	return p + b->len;
}

/* Bytes of the headers of @m, after their count. */
static uint64_t headers_size(const mqlog_msg *m)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < m->header_count; i++)
		n += field_size(&m->headers[i].key) +
		     field_size(&m->headers[i].value);
	return n;
}

/*
 * Bytes of record @index after its length varint, given the size of its
 * timestamp delta.  The lengths must have been validated (each at most
 * RECORD_MAX_SIZE, header_count at most RECORD_MAX_SIZE / 2) so that the
 * sum cannot overflow.  Shared by the size pass and the encoder so that the
 * two cannot disagree.
 */
static inline uint64_t record_body_size(const mqlog_msg *m, size_t index,
					unsigned ts_size)
{
	uint64_t n;

	n = 1 + ts_size + varint_size((uint64_t)index << 1) +
	    field_size(&m->key) + field_size(&m->value) +
	    varint_size((uint64_t)m->header_count << 1);
	/* Headers are rare: keep their loop out of the hot path. */
	if (MQ_UNLIKELY(m->header_count))
		n += headers_size(m);
	return n;
}

/* A record's timestamp with MQLOG_TIMESTAMP_NOW resolved. */
static inline int64_t ts_resolve(int64_t ts, int64_t now_ms)
{
	return ts == MQLOG_TIMESTAMP_NOW ? now_ms : ts;
}

/* Bytes of the timestamp delta of a record. */
static inline unsigned ts_delta_size(int64_t ts, int64_t first_ts)
{
	return varint_size(zz64((uint64_t)ts - (uint64_t)first_ts));
}

/*
 * Check the caller's description of record @i: what must be rejected as
 * invalid, and lengths too large to be summed safely (those make the
 * record too big).  Returns 0, MQLOG_EINVAL (message set) or 1 for "too
 * big".
 */
static int record_validate(const mqlog_msg *m, size_t i)
{
	size_t h;

	if (!m->key.data && m->key.len)
		return mq_err(MQLOG_EINVAL,
			      "record %zu: key is NULL with length %zu", i,
			      m->key.len);
	if (!m->value.data && m->value.len)
		return mq_err(MQLOG_EINVAL,
			      "record %zu: value is NULL with length %zu", i,
			      m->value.len);
	if (m->header_count && !m->headers)
		return mq_err(MQLOG_EINVAL,
			      "record %zu: %zu headers but headers is NULL", i,
			      m->header_count);
	if (m->key.len > RECORD_MAX_SIZE || m->value.len > RECORD_MAX_SIZE ||
	    m->header_count > RECORD_MAX_SIZE / 2)
		return 1;
	for (h = 0; h < m->header_count; h++) {
		const mqlog_header *hd = &m->headers[h];

		if (!hd->key.data)
			return mq_err(MQLOG_EINVAL,
				      "record %zu: header %zu has a null key",
				      i, h);
		if (!hd->value.data && hd->value.len)
			return mq_err(MQLOG_EINVAL,
				      "record %zu: header %zu value is NULL "
				      "with length %zu",
				      i, h, hd->value.len);
		if (hd->key.len > RECORD_MAX_SIZE ||
		    hd->value.len > RECORD_MAX_SIZE)
			return 1;
	}
	return 0;
}

int batch_encoded_size(const mqlog_msg *msgs, size_t count, uint32_t max_record,
		       int64_t now_ms, size_t *size)
{
	uint64_t limit = max_record < RECORD_MAX_SIZE ? max_record :
							RECORD_MAX_SIZE;
	uint64_t total = BATCH_HEADER_SIZE;
	size_t i;
	int rc;

	if (count == 0)
		return mq_err(MQLOG_EINVAL, "batch of 0 records");
	if (!msgs)
		return mq_err(MQLOG_EINVAL, "records array is NULL");

	for (i = 0; i < count; i++) {
		const mqlog_msg *m = &msgs[i];
		uint64_t body, rec;

		rc = record_validate(m, i);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return mq_err(MQLOG_ETOOBIG,
				      "record %zu encodes to more than %" PRIu64
				      " bytes, over the limit of %" PRIu64
				      " bytes",
				      i, (uint64_t)RECORD_MAX_SIZE, limit);
		body = record_body_size(
			m, i,
			ts_delta_size(ts_resolve(m->timestamp, now_ms),
				      ts_resolve(msgs[0].timestamp, now_ms)));
		rec = varint_size(body << 1) + body;
		if (rec > limit)
			return mq_err(MQLOG_ETOOBIG,
				      "record %zu encodes to %" PRIu64
				      " bytes, over the limit of %" PRIu64
				      " bytes",
				      i, rec, limit);
		total += rec;
		if (total > BATCH_MAX_LENGTH)
			return mq_err(MQLOG_ETOOBIG,
				      "batch of %zu records exceeds %u bytes "
				      "at record %zu",
				      count, BATCH_MAX_LENGTH, i);
	}
	*size = (size_t)total;
	return 0;
}

/* Fill the fixed header (but base offset and header checksum) and hash the
 * body: the tail shared by both encoders. */
static void finish_batch(uint8_t *b, size_t size, size_t count,
			 int64_t first_ts, int64_t max_ts)
{
	mq_st32(b + OFF_MAGIC, BATCH_MAGIC);
	mq_st32(b + OFF_LENGTH, (uint32_t)size);
	mq_st64(b + OFF_HEADER_CSUM, 0);
	mq_st64(b + OFF_BASE_OFFSET, 0);
	mq_st16(b + OFF_FLAGS, 0);
	mq_st16(b + OFF_RESERVED, 0);
	mq_st32(b + OFF_COUNT, (uint32_t)count);
	mq_st64(b + OFF_FIRST_TS, (uint64_t)first_ts);
	mq_st64(b + OFF_MAX_TS, (uint64_t)max_ts);
	mq_st64(b + OFF_PRODUCER_ID, 0);
	mq_st32(b + OFF_BASE_SEQUENCE, 0);
	mq_st64(b + OFF_BODY_CSUM,
		csum(b + BATCH_BODY_CSUM_START, size - BATCH_BODY_CSUM_START));
}

/* Write one record whose body is @body bytes; returns the next byte. */
static inline uint8_t *put_record(uint8_t *p, const mqlog_msg *m, size_t i,
				  uint64_t delta, uint64_t body)
{
	p = put_varint(p, body << 1);
	*p++ = 0; /* attributes */
	p = put_varint(p, delta);
	p = put_varint(p, (uint64_t)i << 1);
	p = put_field(p, &m->key);
	p = put_field(p, &m->value);
	p = put_varint(p, (uint64_t)m->header_count << 1);
	for (size_t h = 0; MQ_UNLIKELY(h < m->header_count); h++) {
		p = put_field(p, &m->headers[h].key);
		p = put_field(p, &m->headers[h].value);
	}
	return p;
}

void batch_encode(void *buf, size_t size, const mqlog_msg *msgs, size_t count,
		  int64_t now_ms)
{
	uint8_t *b = buf;
	uint8_t *p = b + BATCH_HEADER_SIZE;
	int64_t first_ts = ts_resolve(msgs[0].timestamp, now_ms);
	int64_t max_ts = first_ts;
	size_t i;

	assert(count >= 1 && count <= UINT32_MAX);
	assert(size >= BATCH_HEADER_SIZE && size <= BATCH_MAX_LENGTH);

	for (i = 0; i < count; i++) {
		const mqlog_msg *m = &msgs[i];
		int64_t ts = ts_resolve(m->timestamp, now_ms);
		uint64_t delta = zz64((uint64_t)ts - (uint64_t)first_ts);

		p = put_record(p, m, i, delta,
			       record_body_size(m, i, varint_size(delta)));
		if (ts > max_ts)
			max_ts = ts;
	}
	/* batch_encoded_size() computed @size with the same functions. */
	assert(p == b + size);
	finish_batch(b, size, count, first_ts, max_ts);
}

/*
 * Most bytes a record can take besides its key, value and header bytes:
 * length (5), attributes (1), timestamp delta (10), offset delta (5), key
 * and value lengths (5 each), header count (5).
 */
#define RECORD_OVERHEAD_MAX 36u
#define HEADER_OVERHEAD_MAX 10u /* key and value lengths of one header */

int batch_size_bound(const mqlog_msg *msgs, size_t count, size_t *bound)
{
	uint64_t total = BATCH_HEADER_SIZE;

	if (!msgs || count == 0 || count > UINT32_MAX)
		return -1;
	for (size_t i = 0; i < count; i++) {
		const mqlog_msg *m = &msgs[i];
		/* Each length is checked before it is added, so no sum of
		 * caller-supplied lengths can wrap. */
		if (m->key.len > BATCH_MAX_LENGTH ||
		    m->value.len > BATCH_MAX_LENGTH)
			return -1;
		total += RECORD_OVERHEAD_MAX + (uint64_t)m->key.len +
			 (uint64_t)m->value.len;
		if (MQ_UNLIKELY(m->header_count)) {
			if (!m->headers || m->header_count > RECORD_MAX_SIZE)
				return -1;
			for (size_t h = 0; h < m->header_count; h++) {
				const mqlog_header *hd = &m->headers[h];
				if (hd->key.len > BATCH_MAX_LENGTH ||
				    hd->value.len > BATCH_MAX_LENGTH)
					return -1;
				total += HEADER_OVERHEAD_MAX +
					 (uint64_t)hd->key.len +
					 (uint64_t)hd->value.len;
				if (total > BATCH_MAX_LENGTH)
					return -1;
			}
		}
		/* Lengths come from the caller: stop before any sum wraps. */
		if (total > BATCH_MAX_LENGTH)
			return -1;
	}
	*bound = (size_t)total;
	return 0;
}

int batch_encode_checked(void *buf, size_t cap, const mqlog_msg *msgs,
			 size_t count, uint32_t max_record, int64_t now_ms,
			 size_t *size)
{
	uint64_t limit = max_record < RECORD_MAX_SIZE ? max_record :
							RECORD_MAX_SIZE;
	uint8_t *b = buf;
	uint8_t *p = b + BATCH_HEADER_SIZE;
	int64_t first_ts = ts_resolve(msgs[0].timestamp, now_ms);
	int64_t max_ts = first_ts;
	int rc;

	for (size_t i = 0; i < count; i++) {
		const mqlog_msg *m = &msgs[i];
		int64_t ts = ts_resolve(m->timestamp, now_ms);
		uint64_t delta = zz64((uint64_t)ts - (uint64_t)first_ts);
		uint64_t body, rec;

		rc = record_validate(m, i);
		if (MQ_UNLIKELY(rc))
			return rc < 0 ?
				       rc :
				       mq_err(MQLOG_ETOOBIG,
					      "record %zu encodes to more than "
					      "%" PRIu64 " bytes",
					      i, (uint64_t)RECORD_MAX_SIZE);
		body = record_body_size(m, i, varint_size(delta));
		rec = varint_size(body << 1) + body;
		if (MQ_UNLIKELY(rec > limit))
			return mq_err(MQLOG_ETOOBIG,
				      "record %zu encodes to %" PRIu64
				      " bytes, over the limit of %" PRIu64
				      " bytes",
				      i, rec, limit);
		/* The bound makes this impossible; checked, not assumed. */
		if (MQ_UNLIKELY(rec > (uint64_t)(b + cap - p)))
			return mq_err(MQLOG_EINVAL, "record %zu: buffer bound",
				      i);
		p = put_record(p, m, i, delta, body);
		if (ts > max_ts)
			max_ts = ts;
	}
	*size = (size_t)(p - b);
	finish_batch(b, *size, count, first_ts, max_ts);
	return 0;
}

/*
 * The record-at-a-time encoder, for a producer that builds its batch as the
 * records arrive (producer.c): each record is written once, in place, and
 * batch_finish() completes the header.  The bytes are exactly those that
 * batch_encode() writes for the same records and timestamps.
 */
int record_encoded_size(const mqlog_msg *m, uint32_t index, int64_t ts_delta,
			uint32_t max_record, size_t *size)
{
	uint64_t limit = max_record < RECORD_MAX_SIZE ? max_record :
							RECORD_MAX_SIZE;
	uint64_t body, rec;
	int rc = record_validate(m, index);

	if (rc < 0)
		return rc;
	if (rc > 0)
		return mq_err(MQLOG_ETOOBIG,
			      "record encodes to more than %" PRIu64 " bytes",
			      (uint64_t)RECORD_MAX_SIZE);
	body = record_body_size(m, index,
				varint_size(zz64((uint64_t)ts_delta)));
	rec = varint_size(body << 1) + body;
	if (rec > limit)
		return mq_err(MQLOG_ETOOBIG,
			      "record encodes to %" PRIu64
			      " bytes, over the limit of %" PRIu64 " bytes",
			      rec, limit);
	*size = (size_t)rec;
	return 0;
}

uint8_t *record_encode(uint8_t *p, const mqlog_msg *m, uint32_t index,
		       int64_t ts_delta)
{
	uint64_t delta = zz64((uint64_t)ts_delta);

	return put_record(p, m, index, delta,
			  record_body_size(m, index, varint_size(delta)));
}

void batch_finish(void *buf, size_t size, uint32_t count, int64_t first_ts,
		  int64_t max_ts)
{
	assert(count >= 1);
	assert(size >= BATCH_HEADER_SIZE && size <= BATCH_MAX_LENGTH);
	finish_batch(buf, size, count, first_ts, max_ts);
}

/* XXH3-64 of a header with its checksum field taken as zero. */
static uint64_t header_checksum(const uint8_t *b)
{
	uint8_t tmp[BATCH_HEADER_SIZE];

	/* A copy, because a reader's header lives in a read-only mapping. */
	memcpy(tmp, b, sizeof(tmp));
	memset(tmp + OFF_HEADER_CSUM, 0, 8);
	return XXH3_64bits(tmp, sizeof(tmp));
}

void batch_seal(void *buf, uint64_t base_offset)
{
	uint8_t *b = buf;

	mq_st64(b + OFF_BASE_OFFSET, base_offset);
	mq_st64(b + OFF_HEADER_CSUM, header_checksum(b));
}

/* ======================================================================== */
/* Validation                                                               */
/* ======================================================================== */

/* The magic without its version byte: "this is a batch, of some version". */
#define MAGIC_FAMILY_MASK 0xFFFFFF00u

static inline int corrupt(const char **why, const char *reason)
{
	*why = reason;
	return MQLOG_ECORRUPT;
}

int batch_check_header(const void *p, size_t avail, struct batch_hdr *h,
		       const char **why)
{
	const uint8_t *b = p;
	uint32_t magic, length, count;

	if (avail < BATCH_HEADER_SIZE)
		return corrupt(why, "truncated batch");
	magic = mq_ld32(b + OFF_MAGIC);
	if (magic != BATCH_MAGIC) {
		if ((magic & MAGIC_FAMILY_MASK) ==
		    (BATCH_MAGIC & MAGIC_FAMILY_MASK))
			return corrupt(why, "unsupported batch format version");
		return corrupt(why, "bad batch magic");
	}
	if (header_checksum(b) != mq_ld64(b + OFF_HEADER_CSUM))
		return corrupt(why, "header checksum mismatch");
	length = mq_ld32(b + OFF_LENGTH);
	if (length < BATCH_HEADER_SIZE + RECORD_MIN_SIZE ||
	    length > BATCH_MAX_LENGTH)
		return corrupt(why, "bad batch length");
	if (length > avail)
		return corrupt(why, "truncated batch");
	if (mq_ld16(b + OFF_FLAGS) != 0)
		return corrupt(why, "unsupported batch flags");
	if (mq_ld16(b + OFF_RESERVED) != 0)
		return corrupt(why, "nonzero reserved field");
	count = mq_ld32(b + OFF_COUNT);
	if (count == 0)
		return corrupt(why, "batch with no records");
	if (count > (length - BATCH_HEADER_SIZE) / RECORD_MIN_SIZE)
		return corrupt(why, "record count does not fit the batch");

	h->magic = magic;
	h->length = length;
	h->header_checksum = mq_ld64(b + OFF_HEADER_CSUM);
	h->base_offset = mq_ld64(b + OFF_BASE_OFFSET);
	h->body_checksum = mq_ld64(b + OFF_BODY_CSUM);
	h->flags = 0;
	h->reserved = 0;
	h->record_count = count;
	h->first_timestamp = (int64_t)mq_ld64(b + OFF_FIRST_TS);
	h->max_timestamp = (int64_t)mq_ld64(b + OFF_MAX_TS);
	h->producer_id = mq_ld64(b + OFF_PRODUCER_ID);
	h->base_sequence = mq_ld32(b + OFF_BASE_SEQUENCE);
	return 0;
}

int batch_check_body(const void *p, const struct batch_hdr *h, const char **why)
{
	const uint8_t *b = p;

	if (csum(b + BATCH_BODY_CSUM_START,
		 h->length - BATCH_BODY_CSUM_START) != h->body_checksum)
		return corrupt(why, "body checksum mismatch");
	return 0;
}

/* ======================================================================== */
/* Decoding                                                                 */
/* ======================================================================== */

/*
 * Walk @count encoded headers from *pp, which must stay inside @end,
 * storing the first @max of them in @out (which may be NULL when max is 0).
 * Returns 0 and advances *pp, or -1.
 */
static int headers_walk(const uint8_t **pp, const uint8_t *end, uint32_t count,
			mqlog_header *out, size_t max)
{
	const uint8_t *p = *pp;
	mqlog_header tmp;
	uint32_t i;

	for (i = 0; i < count; i++) {
		mqlog_header *hd = i < max ? &out[i] : &tmp;

		if (get_bytes(&p, end, &hd->key, false) ||
		    get_bytes(&p, end, &hd->value, true))
			return -1;
	}
	*pp = p;
	return 0;
}

void batch_iter_init(struct batch_iter *it, const void *batch,
		     const struct batch_hdr *h)
{
	const uint8_t *b = batch;

	it->p = b + BATCH_HEADER_SIZE;
	it->end = b + h->length;
	it->left = h->record_count;
	it->base_offset = h->base_offset;
	it->first_ts = h->first_timestamp;
	it->index = 0;
}

int batch_iter_next(struct batch_iter *it, mqlog_record *rec, const char **why)
{
	const uint8_t *p = it->p;
	const uint8_t *end = it->end;
	const uint8_t *rend, *hraw;
	mqlog_bytes key, value;
	uint64_t tsz;
	uint32_t z, len, delta, hcount;

	if (it->left == 0) {
		if (p != end)
			return corrupt(why,
				       "trailing bytes after the last record");
		return 0;
	}
	if (p >= end)
		return corrupt(why, "batch ends before its last record");

	if (get_varint32(&p, end, &z))
		return corrupt(why, "malformed record length");
	len = z >> 1;
	if ((z & 1) || len < RECORD_MIN_BODY)
		return corrupt(why, "bad record length");
	if (len > (size_t)(end - p))
		return corrupt(why, "record runs past the end of the batch");
	rend = p + len;

	/* No attribute is defined yet; a set bit means a newer writer. */
	if (*p++ != 0)
		return corrupt(why, "unsupported record attributes");
	if (get_varint64(&p, rend, &tsz))
		return corrupt(why, "malformed timestamp delta");
	/* Offsets are dense: the delta is the record's index in the batch. */
	if (get_varint32(&p, rend, &z) || (z & 1) || (z >> 1) != it->index)
		return corrupt(why, "bad offset delta");
	delta = z >> 1;
	if (get_bytes(&p, rend, &key, true))
		return corrupt(why, "bad key length");
	if (get_bytes(&p, rend, &value, true))
		return corrupt(why, "bad value length");
	if (get_varint32(&p, rend, &z) || (z & 1))
		return corrupt(why, "bad header count");
	hcount = z >> 1;
	hraw = p;
	if (hcount && headers_walk(&p, rend, hcount, NULL, 0))
		return corrupt(why, "malformed record headers");
	if (p != rend)
		return corrupt(why, "record length does not match its fields");
	/*
	 * Refuse the last record when bytes follow it, so that no record of
	 * a malformed batch is handed out after the fact.
	 */
	if (it->left == 1 && rend != end)
		return corrupt(why, "trailing bytes after the last record");

	it->p = rend;
	it->left--;
	it->index++;

	rec->offset = it->base_offset + delta;
	rec->timestamp = (int64_t)((uint64_t)it->first_ts + unzz64(tsz));
	rec->key = key;
	rec->value = value;
	rec->header_count = hcount;
	rec->headers_raw = hcount ? hraw : NULL;
	rec->headers_raw_len = hcount ? (size_t)(rend - hraw) : 0;
	return 1;
}

int headers_decode(const void *raw, size_t len, uint32_t count,
		   mqlog_header *out, size_t max)
{
	const uint8_t *p = raw;

	if (count == 0)
		return len == 0 ? 0 : MQLOG_ECORRUPT;
	/* Each header takes at least two bytes; this also bounds the loop. */
	if (!raw || count > len / 2 || count > INT32_MAX)
		return MQLOG_ECORRUPT;
	if (headers_walk(&p, p + len, count, out, max) ||
	    p != (const uint8_t *)raw + len)
		return MQLOG_ECORRUPT;
	return (int)(count < max ? count : max);
}

int mqlog_record_headers(const mqlog_record *rec, mqlog_header *out, size_t max)
{
	int rc;

	if (!rec)
		return mq_err(MQLOG_EINVAL, "record is NULL");
	if (!out && max)
		return mq_err(MQLOG_EINVAL, "header array is NULL");
	rc = headers_decode(rec->headers_raw, rec->headers_raw_len,
			    rec->header_count, out, max);
	if (rc < 0)
		return mq_err(rc,
			      "record at offset %" PRIu64 ": malformed headers",
			      rec->offset);
	return rc;
}

int mqlog_record_header(const mqlog_record *rec, const void *key,
			size_t key_len, mqlog_bytes *value)
{
	const uint8_t *p, *end;
	mqlog_header h;
	mqlog_bytes last = { NULL, 0 };
	bool found = false;

	if (!rec || !value || (!key && key_len))
		return mq_err(MQLOG_EINVAL, "record header: NULL argument");
	if (rec->header_count == 0)
		return 0;
	p = rec->headers_raw;
	end = p ? p + rec->headers_raw_len : NULL;
	if (!p || rec->header_count > rec->headers_raw_len / 2)
		goto corrupt;
	/* One header at a time, keeping the last match: no array needed. */
	for (uint32_t i = 0; i < rec->header_count; i++) {
		if (headers_walk(&p, end, 1, &h, 1))
			goto corrupt;
		if (h.key.len == key_len &&
		    (key_len == 0 || memcmp(h.key.data, key, key_len) == 0)) {
			last = h.value;
			found = true;
		}
	}
	if (p != end)
		goto corrupt;
	if (found)
		*value = last;
	return found ? 1 : 0;
corrupt:
	return mq_err(MQLOG_ECORRUPT,
		      "record at offset %" PRIu64 ": malformed headers",
		      rec->offset);
}

/* ======================================================================== */
/* Keys                                                                     */
/* ======================================================================== */

uint64_t record_key_hash(const void *key, size_t len)
{
	/* A null key hashes like an empty one. */
	if (!key)
		len = 0;
	return XXH3_64bits(key, len);
}

uint32_t mqlog_partition_for_key(const void *key, size_t len,
				 uint32_t partitions)
{
	if (partitions == 0)
		return 0;
	return (uint32_t)(record_key_hash(key, len) % partitions);
}
