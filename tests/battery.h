/*
 * battery.h - what the reliability battery (test_crash, test_powerloss,
 * test_corruption, test_faults, test_chaos) shares: a deterministic record
 * generator, a checker that reads a partition back against it, and knobs
 * for run length.  Header only, like helpers.h.
 *
 * The generator makes the record at (seed, partition, offset) a pure
 * function of those three numbers: its key, value, header and timestamp.
 * A writer asks for the records of the offsets it is about to fill, so a
 * checker can tell for any record it reads back whether it is exactly the
 * one that was written there, acknowledged or not.  Nothing the library
 * returns can then be stale, torn or misplaced without the checker
 * noticing.
 */
#ifndef MQLOG_TEST_BATTERY_H
#define MQLOG_TEST_BATTERY_H

#include "helpers.h"

#include <stdarg.h>
#include <stdbool.h>

/* Longest generated value; values are 1..BT_VMAX bytes. */
#define BT_VMAX 700

/* ------------------------------------------------------------------------ */
/* Run length                                                               */
/* ------------------------------------------------------------------------ */

/*
 * The sanitizer builds run the same batteries on a smaller slice (they are
 * 2-4 times slower and look for memory errors, not for rare states); the
 * figures quoted in docs/RELIABILITY.md are those of the plain build.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BT_SANITIZED 1
#else
#define BT_SANITIZED 0
#endif

/* An unsigned number from the environment, or @def. */
static inline unsigned long bt_env_ul(const char *name, unsigned long def)
{
	const char *v = getenv(name);
	char *end;
	unsigned long x;

	if (!v || !*v)
		return def;
	x = strtoul(v, &end, 10);
	return *end ? def : x;
}

/*
 * A scratch directory on a RAM file system when there is one: the
 * batteries build thousands of directories, and what they test (which
 * bytes reach a file, which recovery decisions are made) does not depend
 * on the disk.  MQLOG_BATTERY_TMP overrides; falls back to fx_tmpdir().
 */
static inline char *bt_scratch(void)
{
	const char *base = getenv("MQLOG_BATTERY_TMP");
	char tmpl[4096];
	struct stat st;

	if (!base || !*base)
		base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
				       access("/dev/shm", W_OK) == 0 ?
			       "/dev/shm" :
			       NULL;
	if (!base)
		return fx_tmpdir();
	snprintf(tmpl, sizeof tmpl, "%s/mqlog-battery-XXXXXX", base);
	if (!mkdtemp(tmpl))
		return fx_tmpdir();
	return strdup(tmpl);
}

/* ------------------------------------------------------------------------ */
/* The record generator                                                     */
/* ------------------------------------------------------------------------ */

static inline uint64_t bt_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

static inline uint64_t bt_hash3(uint32_t seed, uint32_t part, uint64_t off)
{
	return bt_mix(bt_mix(((uint64_t)seed << 32) ^ part) ^ off);
}

/* FNV-1a 64, for the payload hashes children report to their parent. */
static inline uint64_t bt_fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	if (!h)
		h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* One generated record with its storage. */
struct bt_rec {
	char key[24];	      /* key bytes (when not null) */
	size_t klen;	      /* key length */
	bool knull;	      /* null key */
	uint8_t val[BT_VMAX]; /* value bytes */
	size_t vlen;	      /* value length, 1..BT_VMAX */
	uint8_t hval[8];      /* the header's value (when there is one) */
	mqlog_header hdr;     /* one header on every fifth record */
	int64_t ts;	      /* timestamp */
};

/*
 * Fill @r with the record at (@seed, @part, @off), values of at most
 * @vmax bytes (1..BT_VMAX), and point @m at it.
 */
static inline void bt_make(uint32_t seed, uint32_t part, uint64_t off,
			   size_t vmax, struct bt_rec *r, mqlog_msg *m)
{
	uint64_t h = bt_hash3(seed, part, off);
	size_t n;

	if (vmax < 24)
		vmax = 24;
	if (vmax > BT_VMAX)
		vmax = BT_VMAX;
	memset(m, 0, sizeof *m);
	r->knull = h % 3 == 0;
	r->klen = r->knull ? 0 :
			     (size_t)snprintf(r->key, sizeof r->key, "k%u",
					      (unsigned)(h >> 40) % 97);
	/* "o<offset>:" then bytes from the hash stream: a value names its
	 * own offset, which makes failure messages readable. */
	n = (size_t)snprintf((char *)r->val, vmax, "o%" PRIu64 ":", off);
	r->vlen = n + (size_t)((h >> 8) % (vmax - n));
	for (size_t i = n; i < r->vlen; i += 8) {
		uint64_t w = bt_mix(h + i);
		size_t k = r->vlen - i < 8 ? r->vlen - i : 8;
		memcpy(r->val + i, &w, k);
	}
	r->ts = 1000000 + (int64_t)off;
	m->key.data = r->knull ? NULL : r->key;
	m->key.len = r->klen;
	m->value.data = r->val;
	m->value.len = r->vlen;
	m->timestamp = r->ts;
	if (off % 5 == 0) {
		memcpy(r->hval, &off, 8);
		r->hdr.key.data = "h";
		r->hdr.key.len = 1;
		r->hdr.value.data = r->hval;
		r->hdr.value.len = 8;
		m->headers = &r->hdr;
		m->header_count = 1;
	}
}

/* Hash of the payload of the record at (@seed, @part, @off). */
static inline uint64_t bt_payload_hash(uint32_t seed, uint32_t part,
				       uint64_t off, size_t vmax)
{
	struct bt_rec r;
	mqlog_msg m;
	bt_make(seed, part, off, vmax, &r, &m);
	return bt_fnv(r.val, r.vlen, bt_fnv(r.key, r.klen, 0));
}

/*
 * Compare a record read back with the generator.  Returns 0, or -1 with a
 * description in @why.
 */
static inline int bt_check_rec(uint32_t seed, uint32_t part, size_t vmax,
			       const mqlog_record *rec, char *why, size_t cap)
{
	struct bt_rec r;
	mqlog_msg m;
	mqlog_header hd[2];

	bt_make(seed, part, rec->offset, vmax, &r, &m);
	if ((rec->key.data == NULL) != r.knull || rec->key.len != r.klen ||
	    (r.klen && memcmp(rec->key.data, r.key, r.klen) != 0)) {
		snprintf(why, cap, "offset %" PRIu64 ": wrong key",
			 rec->offset);
		return -1;
	}
	if (!rec->value.data || rec->value.len != r.vlen ||
	    memcmp(rec->value.data, r.val, r.vlen) != 0) {
		snprintf(why, cap,
			 "offset %" PRIu64
			 ": wrong value (%zu bytes, want %zu)",
			 rec->offset, rec->value.len, r.vlen);
		return -1;
	}
	if (rec->timestamp != r.ts) {
		snprintf(why, cap, "offset %" PRIu64 ": timestamp %" PRId64,
			 rec->offset, rec->timestamp);
		return -1;
	}
	if (rec->header_count != m.header_count ||
	    mqlog_record_headers(rec, hd, 2) != (int)m.header_count ||
	    (m.header_count &&
	     (hd[0].key.len != 1 || memcmp(hd[0].key.data, "h", 1) != 0 ||
	      hd[0].value.len != 8 ||
	      memcmp(hd[0].value.data, r.hval, 8) != 0))) {
		snprintf(why, cap, "offset %" PRIu64 ": wrong headers",
			 rec->offset);
		return -1;
	}
	return 0;
}

/*
 * Append @n generated records at @off (which must be the partition's end)
 * as one batch.  Returns mqlog_append's result; *base gets the base.
 */
static inline int bt_append(mqlog_topic *t, uint32_t seed, uint32_t part,
			    uint64_t off, size_t n, size_t vmax, int sync,
			    uint64_t *base)
{
	struct bt_rec r[16];
	mqlog_msg m[16];

	if (n > 16)
		n = 16;
	for (size_t i = 0; i < n; i++)
		bt_make(seed, part, off + i, vmax, &r[i], &m[i]);
	return mqlog_append(t, part, m, n, sync, base);
}

/* ------------------------------------------------------------------------ */
/* Reading a partition back                                                 */
/* ------------------------------------------------------------------------ */

/* What a partition must hold after recovery. */
struct bt_expect {
	uint32_t seed;	    /* generator seed of the partition's records */
	size_t vmax;	    /* generator value bound */
	uint64_t acked_end; /* every offset below it was acknowledged */
	uint64_t max_start; /* the log start may be at most this (retention) */
	unsigned seek_stride; /* seek to every Nth acknowledged offset (0: 1) */
	bool time_seeks;      /* also check seeks by timestamp */
};

/* Outcome of bt_check_partition. */
struct bt_seen {
	uint64_t start, end; /* the partition's offsets after recovery */
	uint64_t records;    /* records read */
};

static inline int bt_fail(char *why, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline int bt_fail(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Check partition @part of @t against @e: its end is at least acked_end and
 * its start at most max_start; reading from the start returns every record
 * up to the end, densely, each exactly as generated, and ends cleanly;
 * seeking to acknowledged offsets (by offset and, optionally, by time)
 * lands exactly.  Returns 0, or -1 with the first problem in @why.
 */
static inline int bt_check_partition(mqlog_topic *t, uint32_t part,
				     const struct bt_expect *e,
				     struct bt_seen *seen, char *why,
				     size_t cap)
{
	mqlog_partition_info info;
	mqlog_reader *r = NULL;
	mqlog_record rec;
	uint64_t next, stride = e->seek_stride ? e->seek_stride : 1;
	int rc;

	rc = mqlog_partition_stat(t, part, &info);
	if (rc)
		return bt_fail(why, cap, "stat: %s: %s", mqlog_errname(rc),
			       mqlog_errmsg(NULL));
	seen->start = info.start_offset;
	seen->end = info.end_offset;
	seen->records = 0;
	if (info.end_offset < e->acked_end)
		return bt_fail(why, cap,
			       "partition %u ends at %" PRIu64 " but %" PRIu64
			       " were acknowledged",
			       part, info.end_offset, e->acked_end);
	if (info.start_offset > e->max_start)
		return bt_fail(why, cap,
			       "partition %u starts at %" PRIu64
			       ", at most %" PRIu64 " allowed",
			       part, info.start_offset, e->max_start);
	if (info.failed)
		return bt_fail(why, cap, "partition %u is fail-stopped", part);
	rc = mqlog_reader_open(t, part, &r);
	if (rc)
		return bt_fail(why, cap, "reader open: %s: %s",
			       mqlog_errname(rc), mqlog_errmsg(NULL));
	rc = mqlog_reader_seek(r, MQLOG_OFFSET_EARLIEST);
	next = info.start_offset;
	while (rc == 0 && (rc = mqlog_reader_next(r, &rec)) == 1) {
		rc = 0;
		if (rec.offset != next) {
			mqlog_reader_close(r);
			return bt_fail(why, cap,
				       "partition %u: read offset %" PRIu64
				       ", expected %" PRIu64,
				       part, rec.offset, next);
		}
		if (bt_check_rec(e->seed, part, e->vmax, &rec, why, cap)) {
			mqlog_reader_close(r);
			return -1;
		}
		next++;
		seen->records++;
	}
	if (rc != 0 || next != info.end_offset) {
		mqlog_reader_close(r);
		return bt_fail(why, cap,
			       "partition %u: reading stopped at %" PRIu64
			       " of [%" PRIu64 ", %" PRIu64 "): %s: %s",
			       part, next, info.start_offset, info.end_offset,
			       mqlog_errname(rc), mqlog_errmsg(NULL));
	}
	/* Index lookups: every acknowledged offset (at the stride) and the
	 * last one. */
	for (uint64_t o = info.start_offset; o < e->acked_end;) {
		rc = mqlog_reader_seek(r, o);
		if (rc == 0)
			rc = mqlog_reader_next(r, &rec);
		if (rc != 1 || rec.offset != o) {
			mqlog_reader_close(r);
			return bt_fail(why, cap,
				       "partition %u: seek to %" PRIu64
				       " gave %d (%s) offset %" PRIu64 ": %s",
				       part, o, rc, mqlog_errname(rc),
				       rc == 1 ? rec.offset : 0,
				       mqlog_errmsg(NULL));
		}
		if (bt_check_rec(e->seed, part, e->vmax, &rec, why, cap)) {
			mqlog_reader_close(r);
			return -1;
		}
		if (e->time_seeks) {
			rc = mqlog_reader_seek_time(r, 1000000 + (int64_t)o);
			if (rc != 0 || mqlog_reader_position(r) != o) {
				uint64_t pos = mqlog_reader_position(r);
				mqlog_reader_close(r);
				return bt_fail(why, cap,
					       "partition %u: seek to time of "
					       "%" PRIu64
					       " gave %d at %" PRIu64,
					       part, o, rc, pos);
			}
		}
		if (o + 1 == e->acked_end)
			break;
		o = o + stride < e->acked_end ? o + stride : e->acked_end - 1;
	}
	mqlog_reader_close(r);
	return 0;
}

/* Problems reported by mqlog_verify, kept for messages. */
struct bt_problems {
	unsigned n;	 /* problems */
	char first[512]; /* the first one */
};

static inline void bt_on_problem(void *arg, const char *topic,
				 uint32_t partition, const char *file,
				 uint64_t position, const char *what)
{
	struct bt_problems *p = arg;
	if (p->n++ == 0)
		snprintf(p->first, sizeof p->first, "%s/%u %s@%" PRIu64 ": %s",
			 topic ? topic : "-", partition, file ? file : "-",
			 position, what ? what : "-");
}

/* mqlog_verify, with the first problem in @why when it is not clean. */
static inline int bt_verify(mqlog *db, const char *topic, char *why, size_t cap)
{
	struct bt_problems p = { 0, "" };
	int rc = mqlog_verify(db, topic, bt_on_problem, &p, NULL);
	if (rc)
		return bt_fail(why, cap, "verify: %s (%u problems; first: %s)",
			       mqlog_errname(rc), p.n, p.first);
	return 0;
}

#endif
