/*
 * index.c - the LMDB environment of a data directory: topic metadata,
 * partition state and the derived indexes (segment table, offset index,
 * time index).  This is the only file that includes <lmdb.h>.
 *
 * One environment lives in DIR/meta.  It holds these named databases:
 *
 *   database      key (big-endian)               value (little-endian)
 *   ------------  -----------------------------  --------------------------
 *   meta          "next_topic_id"                u16 ver=1, u64 next id
 *                 "format_version"               u16 ver=1, u64 format (1)
 *   topics        topic name bytes (no NUL)      topic_conf_encode() output
 *   segments      u32 tid, u32 part, u64 base    u16 ver=1, u64 size,
 *                                                u64 end_offset, i64 max_ts
 *   offset_index  u32 tid, u32 part, u64 offset  u16 ver=1, u64 seg_base,
 *                                                u64 pos
 *   time_index    u32 tid, u32 part,             u16 ver=1, u64 seg_base,
 *                 u64 ts ^ (1 << 63), u64 offset u64 pos
 *   partitions    u32 tid, u32 part              u16 ver=1, u64 log_start
 *   group_members, group_offsets: consumer groups, laid out in the section
 *                 "Consumer groups" at the end of this file
 *   producers: reserved, created empty
 *   intents       group, NUL, u32 tid, u32 part,  a delivery intent (nack,
 *                 u64 offset                     dead letter, replay): see
 *                                                "Delivery intents" below
 *
 * Keys are big-endian so that LMDB's memcmp order is numeric order and a
 * cursor walks one partition from its lowest key to its highest; every
 * derived key starts with (topic id, partition), so "all keys of a
 * partition" and "all keys of a topic" are contiguous ranges.  Timestamps
 * are signed: flipping the sign bit maps INT64_MIN..INT64_MAX onto
 * 0..UINT64_MAX in the same order.  The timestamp comes before the offset in
 * the time_index key so that several entries may share one timestamp.
 *
 * Values start with a u16 version.  Versions only ever append fields: a
 * reader takes the fields it knows and ignores the rest, and rejects a value
 * shorter than version 1 (MQLOG_ECORRUPT).  Topic ids start at 1 and are
 * never reused, so derived keys of a deleted topic can never be mistaken for
 * those of a new topic with the same name.
 *
 * Map size.  LMDB fixes the size of its memory map; a write that does not
 * fit fails with MDB_MAP_FULL.  We then abort the transaction, double the
 * map and run the whole transaction again.  Another process may have grown
 * the map: mdb_txn_begin then returns MDB_MAP_RESIZED and we adopt the new
 * size with mdb_env_set_mapsize(env, 0).  mdb_env_set_mapsize() must not run
 * while any transaction of this process is open, so every transaction holds
 * ix->lock shared and a remap holds it exclusive.  No transaction or lock is
 * held while a caller's callback runs (index_foreach_*), so callbacks may
 * call back into this module.
 *
 * Durability.  The environment is opened with MDB_NOMETASYNC: a commit
 * flushes the data pages but not the meta page, so a power cut may lose the
 * last few transactions but never corrupts the environment.  Primary writes
 * (topics, partitions) call mdb_env_sync(env, 1) after the commit, so they
 * are durable when the call returns.  Derived writes are not forced: they
 * are rebuilt from the segments.
 *
 * Threads and processes.  Every function below is thread-safe (MDB_NOTLS:
 * read transactions are not tied to a thread; LMDB serialises writers,
 * across processes too).  An index handle must not be used in a child after
 * fork(): the child opens the directory again.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================================================================== */
/* Constants and the handle                                                 */
/* ======================================================================== */

#define IX_DEFAULT_MAP_SIZE (64ull << 20) /* when the caller says 0 */
#define IX_MAX_DBS	    16u	  /* named databases: ours plus room to grow */
#define IX_MAX_READERS	    1024u /* concurrent read txns over all processes */
#define IX_MAX_RETRIES	    64	  /* MAP_FULL / MAP_RESIZED retries per txn */
#define IX_FORMAT_VERSION   1u	  /* layout of the databases described above */
#define IX_VAL_VERSION	    1u	  /* version written into every value */
#define IX_WALK_CHUNK	    256u  /* entries read per txn by index_foreach_* */

/* Value sizes of version 1 (every later version is at least this long). */
#define IX_OFF_VAL_SIZE	 18u /* ver, seg_base, pos */
#define IX_TIME_VAL_SIZE 18u /* ver, seg_base, pos */
#define IX_SEG_VAL_SIZE	 26u /* ver, size, end_offset, max_ts */
#define IX_PART_VAL_SIZE 10u /* ver, log_start */
#define IX_U64_VAL_SIZE	 10u /* ver, value (meta database) */

/* Key sizes. */
#define IX_PART_PREFIX	 8u  /* u32 tid, u32 part */
#define IX_TOPIC_PREFIX	 4u  /* u32 tid */
#define IX_OFF_KEY_SIZE	 16u /* tid, part, offset */
#define IX_TIME_KEY_SIZE 24u /* tid, part, biased ts, offset */
#define IX_SEG_KEY_SIZE	 16u /* tid, part, base */

static const char IX_KEY_NEXT_ID[] = "next_topic_id";
static const char IX_KEY_FORMAT[] = "format_version";

enum ix_db {
	DB_META,
	DB_TOPICS,
	DB_SEGMENTS,
	DB_OFFSETS,
	DB_TIMES,
	DB_PARTS,
	DB_GROUP_OFFSETS,
	DB_GROUP_MEMBERS,
	DB_PRODUCERS,
	DB_INTENTS,
	DB_COUNT_
};

static const char *const ix_db_names[DB_COUNT_] = {
	[DB_META] = "meta",
	[DB_TOPICS] = "topics",
	[DB_SEGMENTS] = "segments",
	[DB_OFFSETS] = "offset_index",
	[DB_TIMES] = "time_index",
	[DB_PARTS] = "partitions",
	[DB_GROUP_OFFSETS] = "group_offsets",
	[DB_GROUP_MEMBERS] = "group_members",
	[DB_PRODUCERS] = "producers",
	[DB_INTENTS] = "intents",
};

struct index {
	MDB_env *env;		/* one per directory per process */
	MDB_dbi dbi[DB_COUNT_]; /* named database handles, valid until close */
	pthread_rwlock_t lock;	/* shared by txns, exclusive for a remap */
	uint64_t map_size;	/* current map size in bytes; written only
				 * with the lock held exclusive */
	bool failed;		/* a remap failed: the map is gone, every
				 * call fails until the handle is closed */
	bool rdonly;		/* opened MDB_RDONLY: every write is refused */
	char *dir;		/* the meta directory, for messages */
	bool no_intents;	/* read-only open of an environment written
				 * before the intents database existed */
};

/* ======================================================================== */
/* Errors                                                                   */
/* ======================================================================== */

/*
 * Translate an LMDB return code (an MDB_* code or an errno value) into ours.
 * MDB_NOTFOUND becomes MQLOG_ENOENT; callers that expect it handle it before
 * coming here.
 */
static int ix_code(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return MQLOG_ENOENT;
	case MDB_KEYEXIST:
		return MQLOG_EEXIST;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_INCOMPATIBLE:
		return MQLOG_ECORRUPT;
	case MDB_VERSION_MISMATCH:
		return MQLOG_EVERSION;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		return MQLOG_EBUSY;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
		return MQLOG_ETOOBIG;
	case MDB_BAD_VALSIZE:
		return MQLOG_EINVAL;
	case MDB_PANIC:
	case MDB_DBS_FULL:
	case MDB_TLS_FULL:
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
		return MQLOG_EIO;
	default:
		if (rc == ENOMEM)
			return MQLOG_ENOMEM;
		return rc > 0 ? -rc : MQLOG_EIO;
	}
}

/*
 * ix_fail - record "DIR/data.mdb: WHAT: LMDB message" for the LMDB code @rc
 * and return our code.  MDB_MAP_FULL is returned unchanged (with the message
 * set) because ix_update() retries on it; it never leaves this file.
 */
static int ix_fail(const struct index *ix, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ix_fail(const struct index *ix, int rc, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	mq_err(ix_code(rc), "%s/data.mdb: %s: %s", ix->dir, what,
	       mdb_strerror(rc));
	return rc == MDB_MAP_FULL ? MDB_MAP_FULL : ix_code(rc);
}

/* A value read from disk that does not decode. */
static int ix_corrupt(const struct index *ix, enum ix_db db, const char *what)
{
	return mq_err(MQLOG_ECORRUPT, "%s/data.mdb: %s: %s", ix->dir,
		      ix_db_names[db], what);
}

/* ======================================================================== */
/* Keys and values                                                          */
/* ======================================================================== */

/* Signed timestamps in unsigned key order. */
static uint64_t ix_ts_bias(int64_t ts)
{
	return (uint64_t)ts ^ (UINT64_C(1) << 63);
}

static int64_t ix_ts_unbias(uint64_t v)
{
	return (int64_t)(v ^ (UINT64_C(1) << 63));
}

static void ix_part_key(uint8_t k[IX_PART_PREFIX], uint32_t tid, uint32_t part)
{
	mq_be32(k, tid);
	mq_be32(k + 4, part);
}

/* Offset and segment keys share one shape: tid, part, u64. */
static void ix_u64_key(uint8_t k[16], uint32_t tid, uint32_t part, uint64_t v)
{
	ix_part_key(k, tid, part);
	mq_be64(k + 8, v);
}

static void ix_time_key(uint8_t k[IX_TIME_KEY_SIZE], uint32_t tid,
			uint32_t part, int64_t ts, uint64_t offset)
{
	ix_part_key(k, tid, part);
	mq_be64(k + 8, ix_ts_bias(ts));
	mq_be64(k + 16, offset);
}

static MDB_val ix_val(void *p, size_t n)
{
	MDB_val v = { .mv_size = n, .mv_data = p };
	return v;
}

/* A version-1-or-later value of at least @min bytes. */
static bool ix_val_ok(const MDB_val *v, size_t min)
{
	return v->mv_size >= min && mq_ld16(v->mv_data) >= 1;
}

static bool ix_has_prefix(const MDB_val *k, const uint8_t *prefix, size_t n)
{
	return k->mv_size >= n && memcmp(k->mv_data, prefix, n) == 0;
}

static void ix_off_val(uint8_t v[IX_OFF_VAL_SIZE], uint64_t seg_base,
		       uint64_t pos)
{
	mq_st16(v, IX_VAL_VERSION);
	mq_st64(v + 2, seg_base);
	mq_st64(v + 10, pos);
}

static void ix_seg_val(uint8_t v[IX_SEG_VAL_SIZE], const struct seg_meta *m)
{
	mq_st16(v, IX_VAL_VERSION);
	mq_st64(v + 2, m->size);
	mq_st64(v + 10, m->end_offset);
	mq_st64(v + 18, (uint64_t)m->max_ts);
}

static void ix_u64_val(uint8_t v[IX_U64_VAL_SIZE], uint64_t x)
{
	mq_st16(v, IX_VAL_VERSION);
	mq_st64(v + 2, x);
}

/* Decoders return false for a key or value that is not what we wrote. */
static bool ix_dec_off(const MDB_val *k, const MDB_val *v,
		       struct index_entry *e)
{
	const uint8_t *kp = k->mv_data;
	const uint8_t *vp = v->mv_data;

	if (k->mv_size != IX_OFF_KEY_SIZE || !ix_val_ok(v, IX_OFF_VAL_SIZE))
		return false;
	e->offset = mq_ldbe64(kp + 8);
	e->seg_base = mq_ld64(vp + 2);
	e->pos = mq_ld64(vp + 10);
	return true;
}

static bool ix_dec_time(const MDB_val *k, const MDB_val *v,
			struct time_entry *e)
{
	const uint8_t *kp = k->mv_data;
	const uint8_t *vp = v->mv_data;

	if (k->mv_size != IX_TIME_KEY_SIZE || !ix_val_ok(v, IX_TIME_VAL_SIZE))
		return false;
	e->ts = ix_ts_unbias(mq_ldbe64(kp + 8));
	e->offset = mq_ldbe64(kp + 16);
	e->seg_base = mq_ld64(vp + 2);
	e->pos = mq_ld64(vp + 10);
	return true;
}

static bool ix_dec_seg(const MDB_val *k, const MDB_val *v, struct seg_meta *m)
{
	const uint8_t *kp = k->mv_data;
	const uint8_t *vp = v->mv_data;

	if (k->mv_size != IX_SEG_KEY_SIZE || !ix_val_ok(v, IX_SEG_VAL_SIZE))
		return false;
	m->base = mq_ldbe64(kp + 8);
	m->size = mq_ld64(vp + 2);
	m->end_offset = mq_ld64(vp + 10);
	m->max_ts = (int64_t)mq_ld64(vp + 18);
	return true;
}

/* ======================================================================== */
/* Topic configuration encoding                                             */
/* ======================================================================== */

/*
 * The encoding of struct topic_meta, used for the topics database and for
 * the topic.conf file of each topic directory (all little-endian):
 *
 *   off  size  field
 *     0     2  version               TOPIC_CONF_VERSION (1)
 *     2     2  length                bytes of the whole encoding
 *     4     4  id
 *     8     4  partitions
 *    12     8  segment_bytes
 *    20     4  sync                  (i32)
 *    24     4  sync_interval_ms
 *    28     8  retention_ms          (i64)
 *    36     8  retention_bytes       (i64)
 *    44     8  max_messages          (i64)
 *    52     4  full_policy           (i32)
 *    56     4  max_record_bytes
 *    60     4  index_interval_bytes
 *    64     4  full_block_ms
 *    68     4  interest              (i32)
 *    72     4  max_attempts
 *    76     4  retry_delay_ms
 *    80     4  checksum              CRC-32C of bytes [0, length - 4)
 *
 * Fields are only ever appended, before the checksum, which always sits in
 * the last four bytes.  A decoder takes the fields that fit in length and
 * fills the others with the defaults of mqlog_topic_config_init(), so an
 * encoding from an older version (fewer fields) still decodes.  An encoding
 * is rejected (MQLOG_ECORRUPT) when the buffer length differs from the
 * length field, when the checksum does not match, or when, for a version no
 * newer than ours, the fields do not end on a field boundary.  A newer
 * version must carry at least our fields; the ones we do not know are
 * ignored.
 */
#define TOPIC_CONF_VERSION 1u
#define TOPIC_CONF_HDR	   4u /* version, length */
#define TOPIC_CONF_CSUM	   4u /* trailing CRC-32C */

/* Field sizes in encoding order; the running sums are the valid lengths. */
static const uint8_t topic_conf_fields[] = { 4, 4, 8, 4, 4, 8, 8, 8, 4, 4, 4, 4,
					     4 /* interest */,
					     /* max_attempts, retry_delay_ms */
					     4, 4 };
#define TOPIC_CONF_NFIELDS (sizeof topic_conf_fields)
#define TOPIC_CONF_BODY	   76u /* sum of topic_conf_fields */
#define TOPIC_CONF_SIZE	   (TOPIC_CONF_HDR + TOPIC_CONF_BODY + TOPIC_CONF_CSUM)

_Static_assert(TOPIC_CONF_SIZE <= TOPIC_CONF_ENCODED_MAX,
	       "topic conf encoding must fit TOPIC_CONF_ENCODED_MAX");

/* CRC-32C (Castagnoli), bitwise: the encoding is 68 bytes, speed is moot. */
static uint32_t ix_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	int k;

	while (n--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
	}
	return ~c;
}

size_t topic_conf_encode(const struct topic_meta *m,
			 uint8_t out[TOPIC_CONF_ENCODED_MAX])
{
	const mqlog_topic_config *c = &m->cfg;
	uint8_t *p = out;

	mq_st16(p, TOPIC_CONF_VERSION);
	mq_st16(p + 2, (uint16_t)TOPIC_CONF_SIZE);
	p += TOPIC_CONF_HDR;
	mq_st32(p, m->id);
	mq_st32(p + 4, c->partitions);
	mq_st64(p + 8, c->segment_bytes);
	mq_st32(p + 16, (uint32_t)(int32_t)c->sync);
	mq_st32(p + 20, c->sync_interval_ms);
	mq_st64(p + 24, (uint64_t)c->retention_ms);
	mq_st64(p + 32, (uint64_t)c->retention_bytes);
	mq_st64(p + 40, (uint64_t)c->max_messages);
	mq_st32(p + 48, (uint32_t)(int32_t)c->full_policy);
	mq_st32(p + 52, c->max_record_bytes);
	mq_st32(p + 56, c->index_interval_bytes);
	mq_st32(p + 60, c->full_block_ms);
	mq_st32(p + 64, (uint32_t)(int32_t)c->interest);
	mq_st32(p + 68, c->max_attempts);
	mq_st32(p + 72, c->retry_delay_ms);
	p += TOPIC_CONF_BODY;
	mq_st32(p, ix_crc32c(out, (size_t)(p - out)));
	return TOPIC_CONF_SIZE;
}

/*
 * The decoder proper: on failure returns MQLOG_ECORRUPT with a static
 * reason in *why and leaves *m untouched.
 */
static int topic_conf_parse(const void *buf, size_t len, struct topic_meta *m,
			    const char **why)
{
	const uint8_t *b = buf;
	const uint8_t *p;
	struct topic_meta t;
	uint16_t version, length;
	size_t body, have, i;

	if (!buf || len < TOPIC_CONF_HDR + TOPIC_CONF_CSUM) {
		*why = "truncated";
		return MQLOG_ECORRUPT;
	}
	version = mq_ld16(b);
	length = mq_ld16(b + 2);
	if (length != len) {
		*why = length > len ? "truncated" : "length mismatch";
		return MQLOG_ECORRUPT;
	}
	if (version == 0) {
		*why = "bad version";
		return MQLOG_ECORRUPT;
	}
	if (mq_ld32(b + len - TOPIC_CONF_CSUM) !=
	    ix_crc32c(b, len - TOPIC_CONF_CSUM)) {
		*why = "checksum mismatch";
		return MQLOG_ECORRUPT;
	}

	/* Which of our fields are present: those whose end fits the body. */
	body = len - TOPIC_CONF_HDR - TOPIC_CONF_CSUM;
	for (i = 0, have = 0; i < TOPIC_CONF_NFIELDS; i++) {
		if (have + topic_conf_fields[i] > body)
			break;
		have += topic_conf_fields[i];
	}
	if (i == 0 || (version <= TOPIC_CONF_VERSION && have != body) ||
	    (version > TOPIC_CONF_VERSION && i != TOPIC_CONF_NFIELDS)) {
		*why = "fields do not match the version";
		return MQLOG_ECORRUPT;
	}

	memset(&t, 0, sizeof t);
	mqlog_topic_config_init(&t.cfg);
	p = b + TOPIC_CONF_HDR;
	t.id = mq_ld32(p);
	if (i > 1)
		t.cfg.partitions = mq_ld32(p + 4);
	if (i > 2)
		t.cfg.segment_bytes = mq_ld64(p + 8);
	if (i > 3)
		t.cfg.sync = (int32_t)mq_ld32(p + 16);
	if (i > 4)
		t.cfg.sync_interval_ms = mq_ld32(p + 20);
	if (i > 5)
		t.cfg.retention_ms = (int64_t)mq_ld64(p + 24);
	if (i > 6)
		t.cfg.retention_bytes = (int64_t)mq_ld64(p + 32);
	if (i > 7)
		t.cfg.max_messages = (int64_t)mq_ld64(p + 40);
	if (i > 8)
		t.cfg.full_policy = (int32_t)mq_ld32(p + 48);
	if (i > 9)
		t.cfg.max_record_bytes = mq_ld32(p + 52);
	if (i > 10)
		t.cfg.index_interval_bytes = mq_ld32(p + 56);
	if (i > 11)
		t.cfg.full_block_ms = mq_ld32(p + 60);
	if (i > 12)
		t.cfg.interest = (int32_t)mq_ld32(p + 64);
	if (i > 13)
		t.cfg.max_attempts = mq_ld32(p + 68);
	if (i > 14)
		t.cfg.retry_delay_ms = mq_ld32(p + 72);
	*m = t;
	return 0;
}

int topic_conf_decode(const void *buf, size_t len, struct topic_meta *m)
{
	const char *why = NULL;
	int rc = topic_conf_parse(buf, len, m, &why);

	if (rc)
		return mq_err(rc, "topic config: %s", why);
	return 0;
}

/* ======================================================================== */
/* Locking and transactions                                                 */
/* ======================================================================== */

/*
 * The rwlock calls can only fail on misuse (recursion, destroyed lock), so
 * their results are asserted, not handled.
 */
static void ix_lock_shared(struct index *ix)
{
	int e = pthread_rwlock_rdlock(&ix->lock);
	assert(e == 0);
	MQ_UNUSED(e);
}

static void ix_lock_excl(struct index *ix)
{
	int e = pthread_rwlock_wrlock(&ix->lock);
	assert(e == 0);
	MQ_UNUSED(e);
}

static void ix_unlock(struct index *ix)
{
	int e = pthread_rwlock_unlock(&ix->lock);
	assert(e == 0);
	MQ_UNUSED(e);
}

static int ix_failed(const struct index *ix)
{
	return mq_err(
		MQLOG_EIO,
		"%s/data.mdb: map lost after a failed resize; close and reopen",
		ix->dir);
}

/* Refresh ix->map_size from LMDB.  Call with the lock held exclusive. */
static void ix_note_map_size(struct index *ix)
{
	MDB_envinfo info;

	if (mdb_env_info(ix->env, &info) == MDB_SUCCESS)
		ix->map_size = info.me_mapsize;
}

/*
 * Remap with @size (0: adopt the size another process recorded).  Waits for
 * every transaction of this process to end first.  When @seen is non-zero,
 * the remap happens only if the map is still @seen bytes: several threads
 * that hit MDB_MAP_FULL at once grow the map once, not once each.
 */
static int ix_remap(struct index *ix, uint64_t seen, uint64_t size)
{
	int rc = 0;

	ix_lock_excl(ix);
	if (ix->failed) {
		rc = ix_failed(ix);
		goto out;
	}
	if (seen && ix->map_size != seen)
		goto out;
	rc = mdb_env_set_mapsize(ix->env, (size_t)size);
	if (rc) {
		/*
		 * LMDB unmaps before it maps again: after a failure there is
		 * no map left, and any transaction would fault.
		 */
		ix->failed = true;
		rc = ix_fail(ix, rc, "resize map to %llu bytes",
			     (unsigned long long)size);
		goto out;
	}
	ix_note_map_size(ix);
out:
	ix_unlock(ix);
	return rc;
}

/* Double the map that was @seen bytes when MDB_MAP_FULL struck. */
static int ix_grow(struct index *ix, uint64_t seen)
{
	if (seen > SIZE_MAX / 2)
		return mq_err(-ENOSPC,
			      "%s/data.mdb: map of %llu bytes cannot grow",
			      ix->dir, (unsigned long long)seen);
	return ix_remap(ix, seen, seen * 2);
}

/*
 * Begin a read transaction.  On success the lock is held shared; release
 * both with ix_read_end().
 */
static int ix_read_begin(struct index *ix, MDB_txn **txn)
{
	int rc;
	int tries;

	for (tries = 0; tries < IX_MAX_RETRIES; tries++) {
		ix_lock_shared(ix);
		if (ix->failed) {
			ix_unlock(ix);
			return ix_failed(ix);
		}
		rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, txn);
		if (rc == MDB_SUCCESS)
			return 0;
		ix_unlock(ix);
		if (rc != MDB_MAP_RESIZED)
			return ix_fail(ix, rc, "begin read txn");
		rc = ix_remap(ix, 0, 0);
		if (rc)
			return rc;
	}
	return ix_fail(ix, MDB_MAP_RESIZED, "begin read txn");
}

static void ix_read_end(struct index *ix, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	ix_unlock(ix);
}

/*
 * The body of a write transaction.  It returns 0, MDB_MAP_FULL (the caller
 * grows the map and runs it again; it must therefore depend only on its
 * arguments), or one of our codes with the message set.
 */
typedef int (*ix_txn_fn)(struct index *ix, MDB_txn *txn, void *arg);

/*
 * ix_update - run @fn in a write transaction and commit it, growing or
 * adopting the map and retrying the whole transaction as needed.  With
 * @durable the environment is synced (meta page included) before return.
 */
static int ix_update(struct index *ix, bool durable, ix_txn_fn fn, void *arg)
{
	MDB_txn *txn;
	uint64_t seen;
	int rc;
	int tries;

	if (ix->rdonly)
		return mq_err(MQLOG_ERDONLY, "%s: opened read-only", ix->dir);
	for (tries = 0; tries < IX_MAX_RETRIES; tries++) {
		ix_lock_shared(ix);
		if (ix->failed) {
			ix_unlock(ix);
			return ix_failed(ix);
		}
		seen = ix->map_size;
		rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			ix_unlock(ix);
			rc = ix_remap(ix, 0, 0);
			if (rc)
				return rc;
			continue;
		}
		if (rc) {
			ix_unlock(ix);
			return ix_fail(ix, rc, "begin write txn");
		}
		rc = fn(ix, txn, arg);
		if (rc) {
			mdb_txn_abort(txn);
		} else {
			/* Commit frees the txn on failure as well. */
			rc = mdb_txn_commit(txn);
			if (rc)
				rc = ix_fail(ix, rc, "commit");
		}
		if (rc == 0 && durable) {
			rc = mdb_env_sync(ix->env, 1);
			if (rc)
				rc = ix_fail(ix, rc, "sync");
		}
		ix_unlock(ix);
		if (rc != MDB_MAP_FULL)
			return rc;
		rc = ix_grow(ix, seen);
		if (rc)
			return rc;
	}
	return mq_err(
		-ENOSPC,
		"%s/data.mdb: transaction does not fit after %d map resizes",
		ix->dir, IX_MAX_RETRIES);
}

/* ======================================================================== */
/* Cursor helpers                                                           */
/* ======================================================================== */

/* Decide, for a key in a deleted range, whether it stays. */
typedef bool (*ix_keep_fn)(const MDB_val *k, const MDB_val *v, void *arg);

/*
 * Delete every key of @db that begins with the first @prefix_len bytes of
 * @start and is >= @start, except those @keep (may be NULL) keeps.
 */
static int ix_range_del(struct index *ix, MDB_txn *txn, enum ix_db db,
			const uint8_t *start, size_t start_len,
			size_t prefix_len, ix_keep_fn keep, void *arg)
{
	uint8_t at[512]; /* LMDB keys are at most 511 bytes */
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	assert(start_len <= sizeof at && prefix_len <= start_len);
	rc = mdb_cursor_open(txn, ix->dbi[db], &cur);
	if (rc)
		return ix_fail(ix, rc, "%s cursor", ix_db_names[db]);
	memcpy(at, start, start_len);
	k = ix_val(at, start_len);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS) {
		if (!ix_has_prefix(&k, start, prefix_len))
			break;
		if (keep && keep(&k, &v, arg)) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			continue;
		}
		/*
		 * After a delete, find the successor by seeking again rather
		 * than relying on where LMDB leaves the cursor.
		 */
		if (k.mv_size > sizeof at)
			return ix_corrupt(ix, db, "oversized key");
		memcpy(at, k.mv_data, k.mv_size);
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		k = ix_val(at, k.mv_size);
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return ix_fail(ix, rc, "%s delete", ix_db_names[db]);
	return 0;
}

/*
 * Position on the largest key of @db that is <= @key (< @key when
 * !@inclusive) and shares its first @prefix_len bytes.  Returns 0 with
 * @k and @v pointing into the map (valid until the txn ends), MQLOG_ENOENT
 * (no message set) when there is none, or an error.
 */
static int ix_floor(struct index *ix, MDB_txn *txn, enum ix_db db, uint8_t *key,
		    size_t klen, size_t prefix_len, bool inclusive, MDB_val *k,
		    MDB_val *v)
{
	MDB_cursor *cur;
	int rc;

	rc = mdb_cursor_open(txn, ix->dbi[db], &cur);
	if (rc)
		return ix_fail(ix, rc, "%s cursor", ix_db_names[db]);
	*k = ix_val(key, klen);
	rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	if (rc == MDB_SUCCESS) {
		/* The first key >= @key: keep it only on an exact hit. */
		if (!(inclusive && k->mv_size == klen &&
		      memcmp(k->mv_data, key, klen) == 0))
			rc = mdb_cursor_get(cur, k, v, MDB_PREV);
	} else if (rc == MDB_NOTFOUND) {
		/* Every key is below @key: the last one is the candidate. */
		rc = mdb_cursor_get(cur, k, v, MDB_LAST);
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		return MQLOG_ENOENT;
	if (rc)
		return ix_fail(ix, rc, "%s seek", ix_db_names[db]);
	/* The step back may have left the partition: never cross it. */
	if (!ix_has_prefix(k, key, prefix_len))
		return MQLOG_ENOENT;
	return 0;
}

/*
 * The key just above @key among keys of the same length and prefix:
 * increment the bytes after the prefix.  False when they were all 0xFF.
 */
static bool ix_key_next(uint8_t *key, size_t klen, size_t prefix_len)
{
	size_t i;

	for (i = klen; i > prefix_len; i--) {
		if (++key[i - 1] != 0)
			return true;
	}
	return false;
}

/* ======================================================================== */
/* Open and close                                                           */
/* ======================================================================== */

/* fsync a directory so that entries created in it survive a power cut. */
static int ix_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return mq_err(-errno, "%s: open directory", path);
	if (fsync(fd) != 0)
		rc = mq_err(-errno, "%s: fsync directory", path);
	close(fd);
	return rc;
}

/* fsync the directory that contains @path. */
static int ix_fsync_parent(const char *path)
{
	char buf[4096];
	char *slash;
	size_t n = strlen(path);

	if (n >= sizeof buf)
		return mq_err(MQLOG_EINVAL, "%s: path too long", path);
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return ix_fsync_dir(".");
	if (slash == buf)
		slash[1] = '\0';
	else
		*slash = '\0';
	return ix_fsync_dir(buf);
}

/*
 * Open the named databases and check the format version.  In a read-write
 * environment this runs as a write txn, which creates what is missing; in a
 * read-only one as a read txn, committed so the handles stay open.
 */
static int ix_open_dbs(struct index *ix, MDB_txn *txn, void *arg)
{
	unsigned flags = ix->rdonly ? 0 : MDB_CREATE;
	uint8_t val[IX_U64_VAL_SIZE];
	MDB_val k, v;
	uint64_t format;
	int rc;
	int i;

	MQ_UNUSED(arg);
	for (i = 0; i < DB_COUNT_; i++) {
		rc = mdb_dbi_open(txn, ix_db_names[i], flags, &ix->dbi[i]);
		if (rc == MDB_NOTFOUND && i == DB_INTENTS) {
			/* Added later: an older environment opened read-only
			 * simply has no pending intents. */
			ix->no_intents = true;
			continue;
		}
		if (rc == MDB_NOTFOUND) {
			/* Only a read-only open of a never-initialised or
			 * older environment gets here. */
			return mq_err(
				i == DB_META ? MQLOG_ENOENT : MQLOG_EVERSION,
				"%s/data.mdb: database %s missing (open read-write once)",
				ix->dir, ix_db_names[i]);
		}
		if (rc)
			return ix_fail(ix, rc, "open database %s",
				       ix_db_names[i]);
	}

	k = ix_val((void *)(uintptr_t)IX_KEY_FORMAT, sizeof IX_KEY_FORMAT - 1);
	rc = mdb_get(txn, ix->dbi[DB_META], &k, &v);
	if (rc == MDB_NOTFOUND) {
		if (ix->rdonly)
			return mq_err(
				MQLOG_ENOENT,
				"%s/data.mdb: not initialised (open read-write once)",
				ix->dir);
		ix_u64_val(val, IX_FORMAT_VERSION);
		v = ix_val(val, sizeof val);
		rc = mdb_put(txn, ix->dbi[DB_META], &k, &v, 0);
		if (rc)
			return ix_fail(ix, rc, "meta put %s", IX_KEY_FORMAT);
		return 0;
	}
	if (rc)
		return ix_fail(ix, rc, "meta get %s", IX_KEY_FORMAT);
	if (!ix_val_ok(&v, IX_U64_VAL_SIZE))
		return ix_corrupt(ix, DB_META, "bad format_version value");
	format = mq_ld64((const uint8_t *)v.mv_data + 2);
	if (format > IX_FORMAT_VERSION)
		return mq_err(MQLOG_EVERSION,
			      "%s/data.mdb: format %llu is newer than %u",
			      ix->dir, (unsigned long long)format,
			      IX_FORMAT_VERSION);
	return 0;
}

/*
 * Walk the structure of data.mdb (lmdbcheck.c) under a read transaction
 * before any tree page is read through LMDB, which trusts every byte.  A
 * writer in another process may rewrite the snapshot's meta page while we
 * look (two commits later): take a fresh snapshot then.
 */
#define IX_CHECK_TRIES 8

uint64_t ix_check_every_open_bytes = IX_CHECK_EVERY_OPEN_BYTES;
uint64_t ix_checks_run;

/*
 * meta/checked: which data.mdb was walked clean in this boot.  The walk
 * finds what a power cut, a disk or a hand did to the file while no process
 * of this boot had it checked; a large data.mdb is walked again only in a
 * new boot, or when it is another file (device, inode, birth time), or one
 * that shrank (LMDB 0.9 never shrinks its file) or went back to an older
 * transaction (a copy restored over it).  Written best-effort by read-write
 * opens, never synced: a reboot voids it anyway.
 */
struct ix_checked {
	uint8_t boot[16];  /* /proc/sys/kernel/random/boot_id */
	uint64_t dev, ino; /* the file */
	int64_t btime_sec; /* its birth time, 0 when unknown */
	uint32_t btime_nsec;
	uint32_t pad;
	uint64_t size;	/* its size at the walk */
	uint64_t txnid; /* the transaction walked */
};

/* This boot and @file's identity into @c (size and txnid left 0). */
static bool ix_checked_self(const char *file, struct ix_checked *c,
			    uint64_t *size)
{
	struct statx sx;

	memset(c, 0, sizeof *c);
	if (!state_boot_id(c->boot))
		return false;
	if (statx(AT_FDCWD, file, 0, STATX_INO | STATX_SIZE | STATX_BTIME,
		  &sx) != 0)
		return false;
	c->dev = (uint64_t)sx.stx_dev_major << 32 | sx.stx_dev_minor;
	c->ino = sx.stx_ino;
	if (sx.stx_mask & STATX_BTIME) {
		c->btime_sec = sx.stx_btime.tv_sec;
		c->btime_nsec = sx.stx_btime.tv_nsec;
	}
	*size = sx.stx_size;
	return true;
}

/* Whether the marker says @self, now @size bytes at transaction @txnid,
 * was walked clean in this boot. */
static bool ix_checked_match(const char *meta_dir,
			     const struct ix_checked *self, uint64_t size,
			     uint64_t txnid)
{
	char path[4112];
	struct ix_checked have;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/checked", meta_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = pread(fd, &have, sizeof have, 0);
	close(fd);
	return n == (ssize_t)sizeof have &&
	       memcmp(have.boot, self->boot, sizeof have.boot) == 0 &&
	       have.dev == self->dev && have.ino == self->ino &&
	       have.btime_sec == self->btime_sec &&
	       have.btime_nsec == self->btime_nsec && size >= have.size &&
	       txnid >= have.txnid;
}

static void ix_checked_put(const char *meta_dir, const struct ix_checked *c)
{
	char path[4112], tmp[4120];
	int fd;

	snprintf(path, sizeof path, "%s/checked", meta_dir);
	snprintf(tmp, sizeof tmp, "%s/checked.tmp", meta_dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (pwrite(fd, c, sizeof *c, 0) != (ssize_t)sizeof *c) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, path) != 0)
		unlink(tmp);
}

/* The transaction a read transaction sees now. */
static int ix_txnid_now(struct index *ix, uint64_t *txnid)
{
	MDB_txn *txn;
	int rc = ix_read_begin(ix, &txn);

	if (rc)
		return rc;
	*txnid = mdb_txn_id(txn);
	mdb_txn_abort(txn);
	ix_unlock(ix);
	return 0;
}

/* Walk data.mdb; *walked: the transaction walked. */
static int ix_check_walk(struct index *ix, const char *file, uint64_t *walked)
{
	MDB_txn *txn;
	uint64_t txnid = 0;
	int tries;
	int rc;

	for (tries = 0; tries < IX_CHECK_TRIES; tries++) {
		rc = ix_read_begin(ix, &txn);
		if (rc)
			return rc;
		ix_checks_run++;
		txnid = mdb_txn_id(txn);
		rc = lmdbcheck_snapshot(
			file, txnid, (unsigned)mdb_env_get_maxkeysize(ix->env));
		mdb_txn_abort(txn);
		ix_unlock(ix);
		*walked = txnid;
		if (rc != 1)
			return rc;
	}
	return mq_err(MQLOG_ECORRUPT,
		      "%s: no meta page holds transaction %llu; delete meta/ "
		      "to rebuild the index (consumer-group offsets are lost "
		      "with it)",
		      file, (unsigned long long)txnid);
}

static int ix_check_structure(struct index *ix, const char *meta_dir,
			      const char *file)
{
	struct ix_checked self;
	uint64_t size = 0, txnid = 0;
	bool known;
	int rc;

	known = ix_checked_self(file, &self, &size);
	if (known && size > ix_check_every_open_bytes &&
	    ix_txnid_now(ix, &txnid) == 0 &&
	    ix_checked_match(meta_dir, &self, size, txnid))
		return 0;
	rc = ix_check_walk(ix, file, &txnid);
	if (rc == 0 && known && size > ix_check_every_open_bytes &&
	    !ix->rdonly) {
		self.size = size;
		self.txnid = txnid;
		ix_checked_put(meta_dir, &self);
	}
	return rc;
}

static int ix_open_dbs_rdonly(struct index *ix)
{
	MDB_txn *txn;
	int rc;

	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	rc = ix_open_dbs(ix, txn, NULL);
	if (rc == 0) {
		/* Committing a read txn keeps the handles it opened. */
		rc = mdb_txn_commit(txn);
		if (rc)
			rc = ix_fail(ix, rc, "open databases");
	} else {
		mdb_txn_abort(txn);
	}
	ix_unlock(ix);
	return rc;
}

int index_open(const char *meta_dir, bool rdonly, uint64_t map_size,
	       struct index **out)
{
	struct index *ix;
	pthread_rwlockattr_t attr;
	char file[4096];
	struct stat st;
	bool created_dir = false;
	bool new_file;
	uint64_t want = map_size ? map_size : IX_DEFAULT_MAP_SIZE;
	unsigned flags = MDB_NOTLS | MDB_NOMETASYNC;
	int dead = 0;
	int rc;

	if (!meta_dir || !*meta_dir || !out)
		return mq_err(MQLOG_EINVAL,
			      "index_open: meta_dir and out required");
#if SIZE_MAX < UINT64_MAX
	if (want > SIZE_MAX)
		return mq_err(MQLOG_EINVAL, "%s: map size %llu too large",
			      meta_dir, (unsigned long long)want);
#endif
	if ((size_t)snprintf(file, sizeof file, "%s/data.mdb", meta_dir) >=
	    sizeof file)
		return mq_err(MQLOG_EINVAL, "%s: path too long", meta_dir);

	ix = calloc(1, sizeof *ix);
	if (!ix)
		return mq_err(MQLOG_ENOMEM, "%s: index handle", meta_dir);
	ix->rdonly = rdonly;
	ix->dir = strdup(meta_dir);
	if (!ix->dir) {
		rc = mq_err(MQLOG_ENOMEM, "%s: index handle", meta_dir);
		goto fail_free;
	}
	/*
	 * Prefer the writer: a remap waiting for the lock must not starve
	 * behind a steady stream of lookups.  Nothing here takes the lock
	 * recursively, which that preference would deadlock.
	 */
	pthread_rwlockattr_init(&attr);
#if defined(__GLIBC__)
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	rc = pthread_rwlock_init(&ix->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc) {
		rc = mq_err(mq_errno_rc(rc), "%s: index lock", meta_dir);
		goto fail_free;
	}

	if (!rdonly) {
		if (mkdir(meta_dir, 0755) == 0)
			created_dir = true;
		else if (errno != EEXIST) {
			rc = mq_err(-errno, "%s: create", meta_dir);
			goto fail_lock;
		}
	}
	new_file = stat(file, &st) != 0;

	rc = mdb_env_create(&ix->env);
	if (rc) {
		rc = ix_fail(ix, rc, "create environment");
		goto fail_lock;
	}
	rc = mdb_env_set_maxdbs(ix->env, IX_MAX_DBS);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(ix->env, IX_MAX_READERS);
	if (rc == 0)
		rc = mdb_env_set_mapsize(ix->env, (size_t)want);
	if (rc) {
		rc = ix_fail(ix, rc, "configure environment");
		goto fail_env;
	}
	if (rdonly)
		flags |= MDB_RDONLY;
	/* LMDB takes the page size and the last page of the meta pages on
	 * trust as it opens the file. */
	rc = lmdbcheck_meta(file);
	if (rc)
		goto fail_env;
	rc = mdb_env_open(ix->env, meta_dir, flags, 0644);
	if (rc == ENOENT) {
		rc = mq_err(MQLOG_ENOENT, "%s/data.mdb: open: %s", meta_dir,
			    mdb_strerror(rc));
		goto fail_env;
	}
	if (rc) {
		rc = ix_fail(ix, rc, "open");
		goto fail_env;
	}

	/* Readers left behind by processes that died mid-txn. */
	rc = mdb_reader_check(ix->env, &dead);
	if (rc) {
		rc = ix_fail(ix, rc, "reader check");
		goto fail_env;
	}

	/*
	 * LMDB keeps the size we asked for, even when the map has since been
	 * grown (by us earlier, or by another process): adopt the recorded
	 * size, then go up to the requested one if that is larger.
	 */
	rc = mdb_env_set_mapsize(ix->env, 0);
	if (rc) {
		rc = ix_fail(ix, rc, "adopt map size");
		goto fail_env;
	}
	ix_note_map_size(ix);
	if (ix->map_size < want) {
		rc = mdb_env_set_mapsize(ix->env, (size_t)want);
		if (rc) {
			rc = ix_fail(ix, rc, "set map size");
			goto fail_env;
		}
		ix_note_map_size(ix);
	}

	rc = ix_check_structure(ix, meta_dir, file);
	if (rc)
		goto fail_env;

	if (rdonly)
		rc = ix_open_dbs_rdonly(ix);
	else
		rc = ix_update(ix, new_file, ix_open_dbs, NULL);
	if (rc)
		goto fail_env;

	/* A new environment is primary data too: make its names durable. */
	if (new_file && !rdonly) {
		rc = ix_fsync_dir(meta_dir);
		if (rc == 0 && created_dir)
			rc = ix_fsync_parent(meta_dir);
		if (rc)
			goto fail_env;
	}
	*out = ix;
	return 0;

fail_env:
	mdb_env_close(ix->env);
fail_lock:
	pthread_rwlock_destroy(&ix->lock);
fail_free:
	free(ix->dir);
	free(ix);
	return rc;
}

void index_close(struct index *ix)
{
	if (!ix)
		return;
	/* Derived writes were committed without a meta sync: flush them so
	 * that a clean close leaves nothing for recovery to redo. */
	if (!ix->rdonly && !ix->failed)
		mdb_env_sync(ix->env, 1);
	mdb_env_close(ix->env);
	pthread_rwlock_destroy(&ix->lock);
	free(ix->dir);
	free(ix);
}

/* ======================================================================== */
/* Topics                                                                   */
/* ======================================================================== */

static int ix_check_name(const char *name)
{
	size_t n;

	if (!name)
		return mq_err(MQLOG_EINVAL, "topic name required");
	n = strlen(name);
	if (n == 0 || n > MQLOG_TOPIC_NAME_MAX)
		return mq_err(MQLOG_EINVAL, "topic name of %zu bytes", n);
	return 0;
}

static MDB_val ix_name_key(const char *name)
{
	return ix_val((void *)(uintptr_t)name, strlen(name));
}

/* Decode the topics value of @name, with a message naming it on failure. */
static int ix_dec_topic(const struct index *ix, const char *name,
			const MDB_val *v, struct topic_meta *m)
{
	const char *why = NULL;
	int rc = topic_conf_parse(v->mv_data, v->mv_size, m, &why);

	if (rc)
		return mq_err(rc, "%s/data.mdb: topics '%s': %s", ix->dir, name,
			      why);
	return 0;
}

int index_topic_get(struct index *ix, const char *name, struct topic_meta *m)
{
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = ix_check_name(name);
	if (rc)
		return rc;
	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	k = ix_name_key(name);
	rc = mdb_get(txn, ix->dbi[DB_TOPICS], &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = mq_err(MQLOG_ENOENT, "topic '%s' not found", name);
	else if (rc)
		rc = ix_fail(ix, rc, "topics get '%s'", name);
	else
		rc = ix_dec_topic(ix, name, &v, m);
	ix_read_end(ix, txn);
	return rc;
}

/* Read the next-topic-id counter (1 when never written). */
static int ix_get_next_id(struct index *ix, MDB_txn *txn, uint64_t *next)
{
	MDB_val k, v;
	int rc;

	k = ix_val((void *)(uintptr_t)IX_KEY_NEXT_ID,
		   sizeof IX_KEY_NEXT_ID - 1);
	rc = mdb_get(txn, ix->dbi[DB_META], &k, &v);
	if (rc == MDB_NOTFOUND) {
		*next = 1;
		return 0;
	}
	if (rc)
		return ix_fail(ix, rc, "meta get %s", IX_KEY_NEXT_ID);
	if (!ix_val_ok(&v, IX_U64_VAL_SIZE))
		return ix_corrupt(ix, DB_META, "bad next_topic_id value");
	*next = mq_ld64((const uint8_t *)v.mv_data + 2);
	if (*next == 0)
		return ix_corrupt(ix, DB_META, "next_topic_id is 0");
	return 0;
}

static int ix_put_next_id(struct index *ix, MDB_txn *txn, uint64_t next)
{
	uint8_t val[IX_U64_VAL_SIZE];
	MDB_val k, v;
	int rc;

	k = ix_val((void *)(uintptr_t)IX_KEY_NEXT_ID,
		   sizeof IX_KEY_NEXT_ID - 1);
	ix_u64_val(val, next);
	v = ix_val(val, sizeof val);
	rc = mdb_put(txn, ix->dbi[DB_META], &k, &v, 0);
	if (rc)
		return ix_fail(ix, rc, "meta put %s", IX_KEY_NEXT_ID);
	return 0;
}

static int ix_put_topic(struct index *ix, MDB_txn *txn, const char *name,
			const struct topic_meta *m)
{
	uint8_t buf[TOPIC_CONF_ENCODED_MAX];
	MDB_val k, v;
	int rc;

	k = ix_name_key(name);
	v = ix_val(buf, topic_conf_encode(m, buf));
	rc = mdb_put(txn, ix->dbi[DB_TOPICS], &k, &v, 0);
	if (rc)
		return ix_fail(ix, rc, "topics put '%s'", name);
	return 0;
}

struct ix_topic_args {
	const char *name;	       /* topic name */
	const mqlog_topic_config *cfg; /* create: its configuration */
	const struct topic_meta *meta; /* put: the meta to store */
	uint32_t id;		       /* create: id given; delete: id */
};

static int ix_topic_create_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_topic_args *a = arg;
	struct topic_meta m;
	uint64_t next;
	MDB_val k, v;
	int rc;

	k = ix_name_key(a->name);
	rc = mdb_get(txn, ix->dbi[DB_TOPICS], &k, &v);
	if (rc == MDB_SUCCESS)
		return mq_err(MQLOG_EEXIST, "topic '%s' exists", a->name);
	if (rc != MDB_NOTFOUND)
		return ix_fail(ix, rc, "topics get '%s'", a->name);
	rc = ix_get_next_id(ix, txn, &next);
	if (rc)
		return rc;
	if (next > UINT32_MAX)
		return mq_err(MQLOG_ERANGE, "%s/data.mdb: topic ids exhausted",
			      ix->dir);
	memset(&m, 0, sizeof m);
	m.id = (uint32_t)next;
	m.cfg = *a->cfg;
	rc = ix_put_topic(ix, txn, a->name, &m);
	if (rc)
		return rc;
	rc = ix_put_next_id(ix, txn, next + 1);
	if (rc)
		return rc;
	a->id = m.id;
	return 0;
}

int index_topic_create(struct index *ix, const char *name,
		       const mqlog_topic_config *cfg, uint32_t *id)
{
	struct ix_topic_args a = { .name = name, .cfg = cfg };
	mqlog_topic_config defaults;
	int rc;

	rc = ix_check_name(name);
	if (rc)
		return rc;
	if (!cfg) {
		mqlog_topic_config_init(&defaults);
		a.cfg = &defaults;
	}
	rc = ix_update(ix, true, ix_topic_create_txn, &a);
	if (rc == 0 && id)
		*id = a.id;
	return rc;
}

static int ix_topic_put_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_topic_args *a = arg;
	struct topic_meta old;
	const char *why;
	uint64_t next;
	MDB_val k, v;
	int rc;

	k = ix_name_key(a->name);
	rc = mdb_get(txn, ix->dbi[DB_TOPICS], &k, &v);
	if (rc == MDB_SUCCESS) {
		/*
		 * An entry that does not decode is replaced: the caller holds
		 * the topic's own copy of its meta, which is the better one.
		 */
		if (topic_conf_parse(v.mv_data, v.mv_size, &old, &why) == 0 &&
		    old.id != a->meta->id)
			return mq_err(MQLOG_EEXIST,
				      "topic '%s' exists with id %u, not %u",
				      a->name, old.id, a->meta->id);
	} else if (rc != MDB_NOTFOUND) {
		return ix_fail(ix, rc, "topics get '%s'", a->name);
	}
	rc = ix_put_topic(ix, txn, a->name, a->meta);
	if (rc)
		return rc;
	/* Keep ids unique: the counter must stay above every id in use. */
	rc = ix_get_next_id(ix, txn, &next);
	if (rc)
		return rc;
	if (next <= a->meta->id)
		rc = ix_put_next_id(ix, txn, (uint64_t)a->meta->id + 1);
	return rc;
}

/*
 * index_topic_put - store @m under @name.  Replaces an entry with the same
 * id (or one that does not decode); MQLOG_EEXIST when @name has another id.
 * Raises the id counter above m->id.
 */
int index_topic_put(struct index *ix, const char *name,
		    const struct topic_meta *m)
{
	struct ix_topic_args a = { .name = name, .meta = m };
	int rc;

	rc = ix_check_name(name);
	if (rc)
		return rc;
	if (!m || m->id == 0)
		return mq_err(MQLOG_EINVAL, "topic '%s': id 0 is reserved",
			      name);
	return ix_update(ix, true, ix_topic_put_txn, &a);
}

static int ix_group_drop_topic(struct index *ix, MDB_txn *txn, uint32_t tid);

static int ix_topic_delete_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	static const enum ix_db derived[] = { DB_SEGMENTS, DB_OFFSETS, DB_TIMES,
					      DB_PARTS };
	struct ix_topic_args *a = arg;
	struct topic_meta m;
	uint8_t prefix[IX_TOPIC_PREFIX];
	MDB_val k, v;
	size_t i;
	int rc;

	k = ix_name_key(a->name);
	rc = mdb_get(txn, ix->dbi[DB_TOPICS], &k, &v);
	if (rc == MDB_SUCCESS) {
		rc = ix_dec_topic(ix, a->name, &v, &m);
		if (rc)
			return rc;
		if (m.id == a->id) {
			rc = mdb_del(txn, ix->dbi[DB_TOPICS], &k, NULL);
			if (rc)
				return ix_fail(ix, rc, "topics delete '%s'",
					       a->name);
		}
	} else if (rc != MDB_NOTFOUND) {
		return ix_fail(ix, rc, "topics get '%s'", a->name);
	}

	mq_be32(prefix, a->id);
	for (i = 0; i < sizeof derived / sizeof derived[0]; i++) {
		rc = ix_range_del(ix, txn, derived[i], prefix, sizeof prefix,
				  sizeof prefix, NULL, NULL);
		if (rc)
			return rc;
	}
	return ix_group_drop_topic(ix, txn, a->id);
}

/*
 * index_topic_delete - idempotent: succeeds when the name is already gone
 * (or belongs to another id), so that an interrupted deletion can be
 * completed.  The id counter is not touched: ids are never reused.
 */
int index_topic_delete(struct index *ix, const char *name, uint32_t id)
{
	struct ix_topic_args a = { .name = name, .id = id };
	int rc;

	rc = ix_check_name(name);
	if (rc)
		return rc;
	return ix_update(ix, true, ix_topic_delete_txn, &a);
}

/*
 * index_topic_list - *names gets a NULL-terminated array of *count names in
 * byte order (LMDB's key order), never NULL on success.  Release with
 * mqlog_list_free().  Outputs are untouched on failure.
 */
int index_topic_list(struct index *ix, char ***names, size_t *count)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_stat st;
	MDB_val k, v;
	char **list = NULL;
	size_t n = 0;
	int rc;

	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	rc = mdb_stat(txn, ix->dbi[DB_TOPICS], &st);
	if (rc) {
		rc = ix_fail(ix, rc, "topics stat");
		goto out;
	}
	list = calloc(st.ms_entries + 1, sizeof *list);
	if (!list) {
		rc = mq_err(MQLOG_ENOMEM, "topic list of %zu", st.ms_entries);
		goto out;
	}
	rc = mdb_cursor_open(txn, ix->dbi[DB_TOPICS], &cur);
	if (rc) {
		rc = ix_fail(ix, rc, "topics cursor");
		goto out;
	}
	/* The count comes from the same snapshot, so the walk fits. */
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     rc == MDB_SUCCESS && n < st.ms_entries;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		list[n] = strndup(k.mv_data, k.mv_size);
		if (!list[n]) {
			rc = mq_err(MQLOG_ENOMEM, "topic list");
			goto out;
		}
		n++;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		rc = ix_fail(ix, rc, "topics walk");
		goto out;
	}
	rc = 0;
	*names = list;
	*count = n;
	list = NULL;
out:
	if (cur)
		mdb_cursor_close(cur);
	ix_read_end(ix, txn);
	mqlog_list_free(list, n);
	return rc;
}

void mqlog_list_free(char **names, size_t count)
{
	size_t i;

	if (!names)
		return;
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* ======================================================================== */
/* Partitions                                                               */
/* ======================================================================== */

int index_part_get(struct index *ix, uint32_t tid, uint32_t part,
		   struct part_meta *m)
{
	uint8_t key[IX_PART_PREFIX];
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	ix_part_key(key, tid, part);
	k = ix_val(key, sizeof key);
	rc = mdb_get(txn, ix->dbi[DB_PARTS], &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = mq_err(MQLOG_ENOENT,
			    "%s/data.mdb: partitions %u/%u: never written",
			    ix->dir, tid, part);
	} else if (rc) {
		rc = ix_fail(ix, rc, "partitions get %u/%u", tid, part);
	} else if (!ix_val_ok(&v, IX_PART_VAL_SIZE)) {
		rc = ix_corrupt(ix, DB_PARTS, "bad value");
	} else {
		m->log_start = mq_ld64((const uint8_t *)v.mv_data + 2);
	}
	ix_read_end(ix, txn);
	return rc;
}

struct ix_part_args {
	uint32_t tid;		   /* topic id */
	uint32_t part;		   /* partition */
	const struct part_meta *m; /* state to store */
};

static int ix_part_put_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	const struct ix_part_args *a = arg;
	uint8_t key[IX_PART_PREFIX];
	uint8_t val[IX_PART_VAL_SIZE];
	MDB_val k, v;
	int rc;

	ix_part_key(key, a->tid, a->part);
	mq_st16(val, IX_VAL_VERSION);
	mq_st64(val + 2, a->m->log_start);
	k = ix_val(key, sizeof key);
	v = ix_val(val, sizeof val);
	rc = mdb_put(txn, ix->dbi[DB_PARTS], &k, &v, 0);
	if (rc)
		return ix_fail(ix, rc, "partitions put %u/%u", a->tid, a->part);
	return 0;
}

int index_part_put(struct index *ix, uint32_t tid, uint32_t part,
		   const struct part_meta *m)
{
	struct ix_part_args a = { .tid = tid, .part = part, .m = m };

	return ix_update(ix, true, ix_part_put_txn, &a);
}

/* Raise the stored log start to a->m->log_start inside the transaction:
 * concurrent raisers (threads, processes) never move it down. */
static int ix_part_raise_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	const struct ix_part_args *a = arg;
	uint8_t key[IX_PART_PREFIX];
	MDB_val k, v;
	int rc;

	ix_part_key(key, a->tid, a->part);
	k = ix_val(key, sizeof key);
	rc = mdb_get(txn, ix->dbi[DB_PARTS], &k, &v);
	if (rc == MDB_SUCCESS) {
		if (!ix_val_ok(&v, IX_PART_VAL_SIZE))
			return ix_corrupt(ix, DB_PARTS, "bad value");
		if (mq_ld64((const uint8_t *)v.mv_data + 2) >= a->m->log_start)
			return 0;
	} else if (rc != MDB_NOTFOUND) {
		return ix_fail(ix, rc, "partitions get %u/%u", a->tid, a->part);
	}
	return ix_part_put_txn(ix, txn, arg);
}

int index_part_raise_start(struct index *ix, uint32_t tid, uint32_t part,
			   uint64_t start, bool durable)
{
	struct part_meta m = { .log_start = start };
	struct ix_part_args a = { .tid = tid, .part = part, .m = &m };

	return ix_update(ix, durable, ix_part_raise_txn, &a);
}

/* ======================================================================== */
/* Derived entries: write, truncate, clear                                  */
/* ======================================================================== */

struct ix_write_args {
	uint32_t tid;		      /* topic id */
	uint32_t part;		      /* partition */
	const struct index_entry *oe; /* offset entries */
	size_t n_oe;		      /* number of offset entries */
	const struct time_entry *te;  /* time entries */
	size_t n_te;		      /* number of time entries */
	const struct seg_meta *sm;    /* segment summaries */
	size_t n_sm;		      /* number of segment summaries */
	uint64_t from;		      /* truncate: first offset removed */
};

static int ix_write_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	const struct ix_write_args *a = arg;
	uint8_t key[IX_TIME_KEY_SIZE];
	uint8_t val[IX_SEG_VAL_SIZE];
	MDB_val k, v;
	size_t i;
	int rc;

	for (i = 0; i < a->n_oe; i++) {
		ix_u64_key(key, a->tid, a->part, a->oe[i].offset);
		ix_off_val(val, a->oe[i].seg_base, a->oe[i].pos);
		k = ix_val(key, IX_OFF_KEY_SIZE);
		v = ix_val(val, IX_OFF_VAL_SIZE);
		rc = mdb_put(txn, ix->dbi[DB_OFFSETS], &k, &v, 0);
		if (rc)
			return ix_fail(ix, rc, "offset_index put %u/%u@%llu",
				       a->tid, a->part,
				       (unsigned long long)a->oe[i].offset);
	}
	for (i = 0; i < a->n_te; i++) {
		ix_time_key(key, a->tid, a->part, a->te[i].ts, a->te[i].offset);
		ix_off_val(val, a->te[i].seg_base, a->te[i].pos);
		k = ix_val(key, IX_TIME_KEY_SIZE);
		v = ix_val(val, IX_TIME_VAL_SIZE);
		rc = mdb_put(txn, ix->dbi[DB_TIMES], &k, &v, 0);
		if (rc)
			return ix_fail(ix, rc, "time_index put %u/%u@%llu",
				       a->tid, a->part,
				       (unsigned long long)a->te[i].offset);
	}
	for (i = 0; i < a->n_sm; i++) {
		ix_u64_key(key, a->tid, a->part, a->sm[i].base);
		ix_seg_val(val, &a->sm[i]);
		k = ix_val(key, IX_SEG_KEY_SIZE);
		v = ix_val(val, IX_SEG_VAL_SIZE);
		rc = mdb_put(txn, ix->dbi[DB_SEGMENTS], &k, &v, 0);
		if (rc)
			return ix_fail(ix, rc, "segments put %u/%u@%llu",
				       a->tid, a->part,
				       (unsigned long long)a->sm[i].base);
	}
	return 0;
}

int index_write(struct index *ix, uint32_t tid, uint32_t part,
		const struct index_entry *oe, size_t n_oe,
		const struct time_entry *te, size_t n_te,
		const struct seg_meta *sm, size_t n_sm)
{
	struct ix_write_args a = {
		.tid = tid,
		.part = part,
		.oe = oe,
		.n_oe = n_oe,
		.te = te,
		.n_te = n_te,
		.sm = sm,
		.n_sm = n_sm,
	};

	assert((oe || !n_oe) && (te || !n_te) && (sm || !n_sm));
	if (ix->rdonly)
		return mq_err(MQLOG_ERDONLY, "%s: opened read-only", ix->dir);
	if (n_oe + n_te + n_sm == 0)
		return 0;
	return ix_update(ix, false, ix_write_txn, &a);
}

/* Truncation keeps time entries below the cut (keyed by time, not offset). */
static bool ix_keep_time(const MDB_val *k, const MDB_val *v, void *arg)
{
	const uint64_t *from = arg;

	MQ_UNUSED(v);
	if (k->mv_size != IX_TIME_KEY_SIZE)
		return false; /* not ours: derived, so drop it */
	return mq_ldbe64((const uint8_t *)k->mv_data + 16) < *from;
}

/* ... and segment summaries that end at or below it. */
static bool ix_keep_seg(const MDB_val *k, const MDB_val *v, void *arg)
{
	const uint64_t *from = arg;
	struct seg_meta m;

	if (!ix_dec_seg(k, v, &m))
		return false;
	return m.end_offset <= *from;
}

static int ix_truncate_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_write_args *a = arg;
	uint8_t key[IX_TIME_KEY_SIZE];
	int rc;

	ix_u64_key(key, a->tid, a->part, a->from);
	rc = ix_range_del(ix, txn, DB_OFFSETS, key, IX_OFF_KEY_SIZE,
			  IX_PART_PREFIX, NULL, NULL);
	if (rc)
		return rc;
	/*
	 * Time keys sort by timestamp first; the running maximum makes them
	 * sort by offset too, but the log is the truth, not that invariant:
	 * walk the whole partition.
	 */
	ix_part_key(key, a->tid, a->part);
	rc = ix_range_del(ix, txn, DB_TIMES, key, IX_PART_PREFIX,
			  IX_PART_PREFIX, ix_keep_time, &a->from);
	if (rc)
		return rc;
	return ix_range_del(ix, txn, DB_SEGMENTS, key, IX_PART_PREFIX,
			    IX_PART_PREFIX, ix_keep_seg, &a->from);
}

int index_truncate(struct index *ix, uint32_t tid, uint32_t part, uint64_t from)
{
	struct ix_write_args a = { .tid = tid, .part = part, .from = from };

	return ix_update(ix, false, ix_truncate_txn, &a);
}

/* Trimming keeps what is at or above the cut: offset entries ... */
static bool ix_keep_off_above(const MDB_val *k, const MDB_val *v, void *arg)
{
	const uint64_t *below = arg;

	MQ_UNUSED(v);
	if (k->mv_size != IX_OFF_KEY_SIZE)
		return false;
	return mq_ldbe64((const uint8_t *)k->mv_data + 8) >= *below;
}

/* ... time entries ... */
static bool ix_keep_time_above(const MDB_val *k, const MDB_val *v, void *arg)
{
	const uint64_t *below = arg;

	MQ_UNUSED(v);
	if (k->mv_size != IX_TIME_KEY_SIZE)
		return false;
	return mq_ldbe64((const uint8_t *)k->mv_data + 16) >= *below;
}

/* ... and summaries of segments that end above it. */
static bool ix_keep_seg_above(const MDB_val *k, const MDB_val *v, void *arg)
{
	const uint64_t *below = arg;
	struct seg_meta m;

	if (!ix_dec_seg(k, v, &m))
		return false;
	return m.end_offset > *below;
}

static int ix_trim_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_write_args *a = arg;
	uint8_t key[IX_PART_PREFIX];
	int rc;

	ix_part_key(key, a->tid, a->part);
	rc = ix_range_del(ix, txn, DB_OFFSETS, key, IX_PART_PREFIX,
			  IX_PART_PREFIX, ix_keep_off_above, &a->from);
	if (!rc)
		rc = ix_range_del(ix, txn, DB_TIMES, key, IX_PART_PREFIX,
				  IX_PART_PREFIX, ix_keep_time_above, &a->from);
	if (!rc)
		rc = ix_range_del(ix, txn, DB_SEGMENTS, key, IX_PART_PREFIX,
				  IX_PART_PREFIX, ix_keep_seg_above, &a->from);
	return rc;
}

int index_trim(struct index *ix, uint32_t tid, uint32_t part, uint64_t below)
{
	struct ix_write_args a = { .tid = tid, .part = part, .from = below };

	if (ix->rdonly)
		return mq_err(MQLOG_ERDONLY, "%s: opened read-only", ix->dir);
	return ix_update(ix, false, ix_trim_txn, &a);
}

static int ix_clear_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	static const enum ix_db derived[] = { DB_OFFSETS, DB_TIMES,
					      DB_SEGMENTS };
	const struct ix_write_args *a = arg;
	uint8_t key[IX_PART_PREFIX];
	size_t i;
	int rc;

	ix_part_key(key, a->tid, a->part);
	for (i = 0; i < sizeof derived / sizeof derived[0]; i++) {
		rc = ix_range_del(ix, txn, derived[i], key, sizeof key,
				  sizeof key, NULL, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

int index_clear(struct index *ix, uint32_t tid, uint32_t part)
{
	struct ix_write_args a = { .tid = tid, .part = part };

	return ix_update(ix, false, ix_clear_txn, &a);
}

/* ======================================================================== */
/* Lookups                                                                  */
/* ======================================================================== */

int index_floor_offset(struct index *ix, uint32_t tid, uint32_t part,
		       uint64_t offset, struct index_entry *out)
{
	uint8_t key[IX_OFF_KEY_SIZE];
	struct index_entry e;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	ix_u64_key(key, tid, part, offset);
	rc = ix_floor(ix, txn, DB_OFFSETS, key, sizeof key, IX_PART_PREFIX,
		      true, &k, &v);
	if (rc == MQLOG_ENOENT)
		rc = mq_err(rc, "%s/data.mdb: offset_index %u/%u: none <= %llu",
			    ix->dir, tid, part, (unsigned long long)offset);
	else if (rc == 0 && !ix_dec_off(&k, &v, &e))
		rc = ix_corrupt(ix, DB_OFFSETS, "bad entry");
	ix_read_end(ix, txn);
	if (rc == 0)
		*out = e;
	return rc;
}

int index_floor_time(struct index *ix, uint32_t tid, uint32_t part, int64_t ts,
		     struct time_entry *out)
{
	uint8_t key[IX_TIME_KEY_SIZE];
	struct time_entry e;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	/* (ts, 0) is the smallest key with timestamp ts: everything before
	 * it in the partition has a smaller timestamp. */
	ix_time_key(key, tid, part, ts, 0);
	rc = ix_floor(ix, txn, DB_TIMES, key, sizeof key, IX_PART_PREFIX, false,
		      &k, &v);
	if (rc == MQLOG_ENOENT)
		rc = mq_err(rc, "%s/data.mdb: time_index %u/%u: none < %lld",
			    ix->dir, tid, part, (long long)ts);
	else if (rc == 0 && !ix_dec_time(&k, &v, &e))
		rc = ix_corrupt(ix, DB_TIMES, "bad entry");
	ix_read_end(ix, txn);
	if (rc == 0)
		*out = e;
	return rc;
}

int index_seg_get(struct index *ix, uint32_t tid, uint32_t part, uint64_t base,
		  struct seg_meta *out)
{
	uint8_t key[IX_SEG_KEY_SIZE];
	struct seg_meta m;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	ix_u64_key(key, tid, part, base);
	k = ix_val(key, sizeof key);
	rc = mdb_get(txn, ix->dbi[DB_SEGMENTS], &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = mq_err(MQLOG_ENOENT,
			    "%s/data.mdb: segments %u/%u: no segment %llu",
			    ix->dir, tid, part, (unsigned long long)base);
	else if (rc)
		rc = ix_fail(ix, rc, "segments get %u/%u@%llu", tid, part,
			     (unsigned long long)base);
	else if (!ix_dec_seg(&k, &v, &m))
		rc = ix_corrupt(ix, DB_SEGMENTS, "bad entry");
	ix_read_end(ix, txn);
	if (rc == 0)
		*out = m;
	return rc;
}

/* ======================================================================== */
/* Walks                                                                    */
/* ======================================================================== */

/* Decode one entry of a walked database into slot @i of @out. */
typedef bool (*ix_dec_fn)(const MDB_val *k, const MDB_val *v, void *out,
			  size_t i);

static bool ix_dec_off_at(const MDB_val *k, const MDB_val *v, void *out,
			  size_t i)
{
	return ix_dec_off(k, v, (struct index_entry *)out + i);
}

static bool ix_dec_time_at(const MDB_val *k, const MDB_val *v, void *out,
			   size_t i)
{
	return ix_dec_time(k, v, (struct time_entry *)out + i);
}

static bool ix_dec_seg_at(const MDB_val *k, const MDB_val *v, void *out,
			  size_t i)
{
	return ix_dec_seg(k, v, (struct seg_meta *)out + i);
}

/*
 * Load up to IX_WALK_CHUNK entries of a partition starting at key @from
 * (inclusive) in one read txn.  On return, @from holds the key to resume at
 * and *more says whether there may be more.
 */
static int ix_walk_chunk(struct index *ix, enum ix_db db, uint8_t *from,
			 size_t klen, ix_dec_fn dec, void *out, size_t *n,
			 bool *more)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	bool bad = false;
	int rc;

	*n = 0;
	*more = false;
	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, ix->dbi[db], &cur);
	if (rc) {
		rc = ix_fail(ix, rc, "%s cursor", ix_db_names[db]);
		goto out;
	}
	k = ix_val(from, klen);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!ix_has_prefix(&k, from, IX_PART_PREFIX))
			break;
		if (*n == IX_WALK_CHUNK) {
			*more = true;
			break;
		}
		if (!dec(&k, &v, out, *n)) {
			bad = true;
			break;
		}
		(*n)++;
		/* dec() checked that the key is klen bytes long. */
		memcpy(from, k.mv_data, klen);
	}
	mdb_cursor_close(cur);
	if (bad)
		rc = ix_corrupt(ix, db, "bad entry");
	else if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND)
		rc = 0;
	else
		rc = ix_fail(ix, rc, "%s walk", ix_db_names[db]);
	/* Resume just past the last key handed out. */
	if (rc == 0 && *more && !ix_key_next(from, klen, IX_PART_PREFIX))
		*more = false;
out:
	ix_read_end(ix, txn);
	return rc;
}

/*
 * Walk in chunks so that no transaction or lock is held while @fn runs:
 * a long verify must not pin old pages, and @fn may use this module.
 */
static int ix_walk(struct index *ix, enum ix_db db, uint32_t tid, uint32_t part,
		   size_t klen, ix_dec_fn dec, void *buf, size_t elem,
		   int (*fn)(void *arg, const void *e), void *arg)
{
	uint8_t from[IX_TIME_KEY_SIZE];
	size_t n, i;
	bool more = true;
	int rc;

	memset(from, 0, sizeof from);
	ix_part_key(from, tid, part);
	while (more) {
		rc = ix_walk_chunk(ix, db, from, klen, dec, buf, &n, &more);
		if (rc)
			return rc;
		for (i = 0; i < n; i++) {
			rc = fn(arg, (const uint8_t *)buf + i * elem);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Adapters from the typed callbacks to the untyped walk. */
struct ix_walk_off {
	int (*fn)(void *arg, const struct index_entry *e); /* user callback */
	void *arg;					   /* its argument */
};

struct ix_walk_time {
	int (*fn)(void *arg, const struct time_entry *e); /* user callback */
	void *arg;					  /* its argument */
};

struct ix_walk_seg {
	int (*fn)(void *arg, const struct seg_meta *m); /* user callback */
	void *arg;					/* its argument */
};

static int ix_call_off(void *arg, const void *e)
{
	const struct ix_walk_off *w = arg;
	return w->fn(w->arg, e);
}

static int ix_call_time(void *arg, const void *e)
{
	const struct ix_walk_time *w = arg;
	return w->fn(w->arg, e);
}

static int ix_call_seg(void *arg, const void *e)
{
	const struct ix_walk_seg *w = arg;
	return w->fn(w->arg, e);
}

int index_foreach_offset(struct index *ix, uint32_t tid, uint32_t part,
			 int (*fn)(void *arg, const struct index_entry *e),
			 void *arg)
{
	struct index_entry buf[IX_WALK_CHUNK];
	struct ix_walk_off w = { .fn = fn, .arg = arg };

	return ix_walk(ix, DB_OFFSETS, tid, part, IX_OFF_KEY_SIZE,
		       ix_dec_off_at, buf, sizeof buf[0], ix_call_off, &w);
}

int index_foreach_time(struct index *ix, uint32_t tid, uint32_t part,
		       int (*fn)(void *arg, const struct time_entry *e),
		       void *arg)
{
	struct time_entry buf[IX_WALK_CHUNK];
	struct ix_walk_time w = { .fn = fn, .arg = arg };

	return ix_walk(ix, DB_TIMES, tid, part, IX_TIME_KEY_SIZE,
		       ix_dec_time_at, buf, sizeof buf[0], ix_call_time, &w);
}

int index_foreach_seg(struct index *ix, uint32_t tid, uint32_t part,
		      int (*fn)(void *arg, const struct seg_meta *m), void *arg)
{
	struct seg_meta buf[IX_WALK_CHUNK];
	struct ix_walk_seg w = { .fn = fn, .arg = arg };

	return ix_walk(ix, DB_SEGMENTS, tid, part, IX_SEG_KEY_SIZE,
		       ix_dec_seg_at, buf, sizeof buf[0], ix_call_seg, &w);
}

/* ======================================================================== */
/* Consumer groups                                                          */
/* ======================================================================== */

/*
 * Keys start with the group name and a NUL (group names never contain
 * one), then the topic id, so that everything of one group on one topic is
 * one contiguous range of each database:
 *
 *   group_members  group, 0, u32 tid, u64 member id      member value
 *                  group, 0, u32 tid, u64 0              state value
 *   group_offsets  group, 0, u32 tid, u32 partition      partition value
 *
 * Values (little-endian, a u16 version first, fields only ever appended):
 *
 *   state      ver, u64 generation, u32 strategy, u32 n, n x u64 target
 *              (target[p]: the member the assignment gives partition p)
 *   member     ver, i32 pid, u64 pid_start, u64 pidns, u64 boot,
 *              i64 lease_until, i64 heartbeat, u64 gen, u64 joined,
 *              u32 lease_ms
 *   partition  ver, u64 committed, i64 commit_ms, u64 owner, u64 owner_gen
 *
 * A transaction loads the whole group (state, members, partitions), hands
 * it to group.c's callback and writes back only what the callback changed,
 * so that a heartbeat rewrites one member record and a commit one
 * partition record.  The ownership of a partition and its committed offset
 * share one record: the fencing check of a commit ("does this member still
 * own the partition?") and the commit itself are one read-modify-write.
 */
#define IX_GROUP_PREFIX_MAX (GROUP_NAME_MAX + 1 + 4) /* name, NUL, tid */
#define IX_GSTATE_HDR_SIZE  18u /* ver, generation, strategy, n */
#define IX_GMEMBER_VAL_SIZE 66u /* ver .. lease_ms */
#define IX_GPART_VAL_SIZE   34u /* ver, committed, commit_ms, owner, gen */

static int ix_group_check(const struct index *ix, const char *group)
{
	size_t n;

	if (!group)
		return mq_err(MQLOG_EINVAL, "%s: group name is NULL", ix->dir);
	n = strlen(group);
	if (n == 0 || n > GROUP_NAME_MAX)
		return mq_err(MQLOG_EINVAL, "%s: group name of %zu bytes",
			      ix->dir, n);
	return 0;
}

/* Write the key prefix of (group, tid) into @k; returns its length. */
static size_t ix_group_prefix(uint8_t *k, const char *group, uint32_t tid)
{
	size_t n = strlen(group);

	memcpy(k, group, n);
	k[n] = 0;
	mq_be32(k + n + 1, tid);
	return n + 5;
}

/*
 * Split a key of either group database into group name and topic id;
 * *rest gets the bytes after the prefix.  False for a key we did not
 * write.
 */
static bool ix_group_split(const MDB_val *k, struct group_ref *ref,
			   size_t *rest)
{
	const uint8_t *p = k->mv_data;
	const uint8_t *nul = memchr(p, 0, k->mv_size);
	size_t n;

	if (!nul)
		return false;
	n = (size_t)(nul - p);
	if (n == 0 || n > GROUP_NAME_MAX || k->mv_size < n + 5)
		return false;
	if (ref) {
		memcpy(ref->name, p, n);
		ref->name[n] = '\0';
		ref->tid = mq_ldbe32(p + n + 1);
	}
	*rest = k->mv_size - n - 5;
	return true;
}

void group_snap_free(struct group_snap *s)
{
	if (!s)
		return;
	free(s->target);
	free(s->parts);
	free(s->members);
	memset(s, 0, sizeof *s);
}

static int ix_group_alloc(struct group_snap *s, uint32_t nparts, size_t members)
{
	size_t n = nparts ? nparts : 1;

	memset(s, 0, sizeof *s);
	s->nparts = nparts;
	s->cap = members + 8;
	s->target = calloc(n, sizeof *s->target);
	s->parts = calloc(n, sizeof *s->parts);
	s->members = calloc(s->cap, sizeof *s->members);
	if (!s->target || !s->parts || !s->members) {
		group_snap_free(s);
		return mq_err(MQLOG_ENOMEM, "group of %u partitions", nparts);
	}
	for (uint32_t i = 0; i < nparts; i++)
		s->parts[i].committed = GROUP_NO_OFFSET;
	return 0;
}

/* Append @m, keeping room for one more (the callback may add a member). */
static int ix_group_push(struct group_snap *s, const struct group_member *m)
{
	if (s->nmembers + 2 > s->cap) {
		size_t ncap = s->cap * 2;
		struct group_member *nm =
			realloc(s->members, ncap * sizeof *nm);
		if (!nm)
			return mq_err(MQLOG_ENOMEM, "group members");
		s->members = nm;
		s->cap = ncap;
	}
	s->members[s->nmembers++] = *m;
	return 0;
}

static int ix_group_copy(struct group_snap *dst, const struct group_snap *src)
{
	int rc = ix_group_alloc(dst, src->nparts, src->nmembers);

	if (rc)
		return rc;
	dst->exists = src->exists;
	dst->generation = src->generation;
	dst->strategy = src->strategy;
	memcpy(dst->target, src->target, src->nparts * sizeof *src->target);
	memcpy(dst->parts, src->parts, src->nparts * sizeof *src->parts);
	memcpy(dst->members, src->members,
	       src->nmembers * sizeof *src->members);
	dst->nmembers = src->nmembers;
	return 0;
}

static bool ix_dec_gmember(const MDB_val *v, struct group_member *m)
{
	const uint8_t *p = v->mv_data;

	if (!ix_val_ok(v, IX_GMEMBER_VAL_SIZE))
		return false;
	m->pid = (int32_t)mq_ld32(p + 2);
	m->pid_start = mq_ld64(p + 6);
	m->pidns = mq_ld64(p + 14);
	m->boot = mq_ld64(p + 22);
	m->lease_until = (int64_t)mq_ld64(p + 30);
	m->heartbeat = (int64_t)mq_ld64(p + 38);
	m->gen = mq_ld64(p + 46);
	m->joined = mq_ld64(p + 54);
	m->lease_ms = mq_ld32(p + 62);
	return true;
}

static void ix_enc_gmember(uint8_t v[IX_GMEMBER_VAL_SIZE],
			   const struct group_member *m)
{
	mq_st16(v, IX_VAL_VERSION);
	mq_st32(v + 2, (uint32_t)m->pid);
	mq_st64(v + 6, m->pid_start);
	mq_st64(v + 14, m->pidns);
	mq_st64(v + 22, m->boot);
	mq_st64(v + 30, (uint64_t)m->lease_until);
	mq_st64(v + 38, (uint64_t)m->heartbeat);
	mq_st64(v + 46, m->gen);
	mq_st64(v + 54, m->joined);
	mq_st32(v + 62, m->lease_ms);
}

static bool ix_dec_gpart(const MDB_val *v, struct group_part *gp)
{
	const uint8_t *p = v->mv_data;

	if (!ix_val_ok(v, IX_GPART_VAL_SIZE))
		return false;
	gp->committed = mq_ld64(p + 2);
	gp->commit_ms = (int64_t)mq_ld64(p + 10);
	gp->owner = mq_ld64(p + 18);
	gp->owner_gen = mq_ld64(p + 26);
	return true;
}

static void ix_enc_gpart(uint8_t v[IX_GPART_VAL_SIZE],
			 const struct group_part *gp)
{
	mq_st16(v, IX_VAL_VERSION);
	mq_st64(v + 2, gp->committed);
	mq_st64(v + 10, (uint64_t)gp->commit_ms);
	mq_st64(v + 18, gp->owner);
	mq_st64(v + 26, gp->owner_gen);
}

/* Decode a state value; targets of partitions the topic lacks are dropped. */
static bool ix_dec_gstate(const MDB_val *v, struct group_snap *s)
{
	const uint8_t *p = v->mv_data;
	uint32_t n;

	if (!ix_val_ok(v, IX_GSTATE_HDR_SIZE))
		return false;
	n = mq_ld32(p + 14);
	if ((v->mv_size - IX_GSTATE_HDR_SIZE) / 8 < n)
		return false;
	s->exists = true;
	s->generation = mq_ld64(p + 2);
	s->strategy = mq_ld32(p + 10);
	for (uint32_t i = 0; i < n && i < s->nparts; i++)
		s->target[i] = mq_ld64(p + IX_GSTATE_HDR_SIZE + 8 * (size_t)i);
	return true;
}

/* Load (group, tid) from @txn into @s (allocated here). */
static int ix_group_load(struct index *ix, MDB_txn *txn, const char *group,
			 uint32_t tid, uint32_t nparts, struct group_snap *s)
{
	uint8_t key[IX_GROUP_PREFIX_MAX + 8];
	size_t plen = ix_group_prefix(key, group, tid);
	struct group_member m;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	rc = ix_group_alloc(s, nparts, 0);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, ix->dbi[DB_GROUP_MEMBERS], &cur);
	if (rc) {
		rc = ix_fail(ix, rc, "group_members cursor");
		goto fail;
	}
	k = ix_val(key, plen);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t id;

		if (!ix_has_prefix(&k, key, plen))
			break;
		if (k.mv_size != plen + 8) {
			rc = ix_corrupt(ix, DB_GROUP_MEMBERS, "bad key");
			goto fail;
		}
		id = mq_ldbe64((const uint8_t *)k.mv_data + plen);
		if (id == 0) {
			if (!ix_dec_gstate(&v, s)) {
				rc = ix_corrupt(ix, DB_GROUP_MEMBERS,
						"bad group state");
				goto fail;
			}
			continue;
		}
		memset(&m, 0, sizeof m);
		if (!ix_dec_gmember(&v, &m)) {
			rc = ix_corrupt(ix, DB_GROUP_MEMBERS, "bad member");
			goto fail;
		}
		m.id = id;
		rc = ix_group_push(s, &m);
		if (rc)
			goto fail;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		rc = ix_fail(ix, rc, "group_members walk");
		goto fail;
	}
	mdb_cursor_close(cur);
	cur = NULL;

	rc = mdb_cursor_open(txn, ix->dbi[DB_GROUP_OFFSETS], &cur);
	if (rc) {
		rc = ix_fail(ix, rc, "group_offsets cursor");
		goto fail;
	}
	k = ix_val(key, plen);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct group_part gp;
		uint32_t part;

		if (!ix_has_prefix(&k, key, plen))
			break;
		if (k.mv_size != plen + 4 || !ix_dec_gpart(&v, &gp)) {
			rc = ix_corrupt(ix, DB_GROUP_OFFSETS, "bad entry");
			goto fail;
		}
		part = mq_ldbe32((const uint8_t *)k.mv_data + plen);
		if (part < nparts)
			s->parts[part] = gp;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		rc = ix_fail(ix, rc, "group_offsets walk");
		goto fail;
	}
	mdb_cursor_close(cur);
	return 0;
fail:
	if (cur)
		mdb_cursor_close(cur);
	group_snap_free(s);
	return rc;
}

static bool ix_gmember_eq(const struct group_member *a,
			  const struct group_member *b)
{
	return a->id == b->id && a->pid == b->pid &&
	       a->pid_start == b->pid_start && a->pidns == b->pidns &&
	       a->boot == b->boot && a->lease_until == b->lease_until &&
	       a->heartbeat == b->heartbeat && a->gen == b->gen &&
	       a->joined == b->joined && a->lease_ms == b->lease_ms;
}

static bool ix_gpart_eq(const struct group_part *a, const struct group_part *b)
{
	return a->committed == b->committed && a->commit_ms == b->commit_ms &&
	       a->owner == b->owner && a->owner_gen == b->owner_gen;
}

static const struct group_member *ix_gfind(const struct group_snap *s,
					   uint64_t id)
{
	for (size_t i = 0; i < s->nmembers; i++)
		if (s->members[i].id == id)
			return &s->members[i];
	return NULL;
}

/* Write what differs between @old and @s. */
static int ix_group_store(struct index *ix, MDB_txn *txn, const char *group,
			  uint32_t tid, const struct group_snap *old,
			  const struct group_snap *s)
{
	uint8_t key[IX_GROUP_PREFIX_MAX + 8];
	uint8_t val[IX_GMEMBER_VAL_SIZE];
	size_t plen = ix_group_prefix(key, group, tid);
	MDB_val k, v;
	int rc;

	if (s->exists && (!old->exists || old->generation != s->generation ||
			  old->strategy != s->strategy ||
			  memcmp(old->target, s->target,
				 s->nparts * sizeof *s->target) != 0)) {
		size_t n = IX_GSTATE_HDR_SIZE + 8 * (size_t)s->nparts;
		uint8_t *buf = malloc(n);

		if (!buf)
			return mq_err(MQLOG_ENOMEM, "group '%s' state", group);
		mq_st16(buf, IX_VAL_VERSION);
		mq_st64(buf + 2, s->generation);
		mq_st32(buf + 10, s->strategy);
		mq_st32(buf + 14, s->nparts);
		for (uint32_t i = 0; i < s->nparts; i++)
			mq_st64(buf + IX_GSTATE_HDR_SIZE + 8 * (size_t)i,
				s->target[i]);
		mq_be64(key + plen, 0);
		k = ix_val(key, plen + 8);
		v = ix_val(buf, n);
		rc = mdb_put(txn, ix->dbi[DB_GROUP_MEMBERS], &k, &v, 0);
		free(buf);
		if (rc)
			return ix_fail(ix, rc, "group '%s' state put", group);
	}

	for (size_t i = 0; i < old->nmembers; i++) {
		if (ix_gfind(s, old->members[i].id))
			continue;
		mq_be64(key + plen, old->members[i].id);
		k = ix_val(key, plen + 8);
		rc = mdb_del(txn, ix->dbi[DB_GROUP_MEMBERS], &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return ix_fail(ix, rc, "group '%s' member delete",
				       group);
	}
	for (size_t i = 0; i < s->nmembers; i++) {
		const struct group_member *m = &s->members[i];
		const struct group_member *o = ix_gfind(old, m->id);

		if (m->id == 0 || (o && ix_gmember_eq(o, m)))
			continue;
		mq_be64(key + plen, m->id);
		ix_enc_gmember(val, m);
		k = ix_val(key, plen + 8);
		v = ix_val(val, IX_GMEMBER_VAL_SIZE);
		rc = mdb_put(txn, ix->dbi[DB_GROUP_MEMBERS], &k, &v, 0);
		if (rc)
			return ix_fail(ix, rc, "group '%s' member put", group);
	}

	for (uint32_t i = 0; i < s->nparts; i++) {
		if (ix_gpart_eq(&old->parts[i], &s->parts[i]))
			continue;
		mq_be32(key + plen, i);
		ix_enc_gpart(val, &s->parts[i]);
		k = ix_val(key, plen + 4);
		v = ix_val(val, IX_GPART_VAL_SIZE);
		rc = mdb_put(txn, ix->dbi[DB_GROUP_OFFSETS], &k, &v, 0);
		if (rc)
			return ix_fail(ix, rc, "group '%s' partition %u put",
				       group, i);
	}
	return 0;
}

struct ix_group_args {
	const char *group; /* group name */
	uint32_t tid;	   /* topic id */
	uint32_t nparts;   /* partitions of the topic */
	group_txn_fn fn;   /* the change */
	void *arg;	   /* its argument */
};

static int ix_group_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_group_args *a = arg;
	struct group_snap old, s;
	int rc;

	rc = ix_group_load(ix, txn, a->group, a->tid, a->nparts, &old);
	if (rc)
		return rc;
	rc = ix_group_copy(&s, &old);
	if (rc) {
		group_snap_free(&old);
		return rc;
	}
	rc = a->fn(&s, a->arg);
	if (rc == 0)
		rc = ix_group_store(ix, txn, a->group, a->tid, &old, &s);
	group_snap_free(&old);
	group_snap_free(&s);
	return rc;
}

int index_group_update(struct index *ix, const char *group, uint32_t tid,
		       uint32_t nparts, bool durable, group_txn_fn fn,
		       void *arg)
{
	struct ix_group_args a = {
		.group = group,
		.tid = tid,
		.nparts = nparts,
		.fn = fn,
		.arg = arg,
	};
	int rc = ix_group_check(ix, group);

	if (rc)
		return rc;
	return ix_update(ix, durable, ix_group_txn, &a);
}

int index_group_read(struct index *ix, const char *group, uint32_t tid,
		     uint32_t nparts, struct group_snap *s)
{
	MDB_txn *txn;
	int rc = ix_group_check(ix, group);

	if (rc)
		return rc;
	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	rc = ix_group_load(ix, txn, group, tid, nparts, s);
	ix_read_end(ix, txn);
	return rc;
}

int index_group_peek(struct index *ix, const char *group, uint32_t tid,
		     uint64_t *generation)
{
	uint8_t key[IX_GROUP_PREFIX_MAX + 8];
	size_t plen;
	MDB_txn *txn;
	MDB_val k, v;
	int rc = ix_group_check(ix, group);

	if (rc)
		return rc;
	plen = ix_group_prefix(key, group, tid);
	mq_be64(key + plen, 0);
	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	k = ix_val(key, plen + 8);
	rc = mdb_get(txn, ix->dbi[DB_GROUP_MEMBERS], &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = mq_err(MQLOG_ENOENT, "group '%s': no state", group);
	else if (rc)
		rc = ix_fail(ix, rc, "group '%s' state get", group);
	else if (!ix_val_ok(&v, IX_GSTATE_HDR_SIZE))
		rc = ix_corrupt(ix, DB_GROUP_MEMBERS, "bad group state");
	else
		*generation = mq_ld64((const uint8_t *)v.mv_data + 2);
	ix_read_end(ix, txn);
	return rc;
}

static int ix_group_ref_cmp(const void *a, const void *b)
{
	const struct group_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

int index_group_list(struct index *ix, struct group_ref **out, size_t *n)
{
	static const enum ix_db dbs[] = { DB_GROUP_MEMBERS, DB_GROUP_OFFSETS };
	struct group_ref *list = NULL, ref;
	size_t cnt = 0, cap = 0, rest;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	for (size_t d = 0; d < sizeof dbs / sizeof dbs[0]; d++) {
		rc = mdb_cursor_open(txn, ix->dbi[dbs[d]], &cur);
		if (rc) {
			rc = ix_fail(ix, rc, "%s cursor", ix_db_names[dbs[d]]);
			goto out;
		}
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		     rc == MDB_SUCCESS;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (!ix_group_split(&k, &ref, &rest))
				continue; /* not ours: ignored */
			if (cnt && !ix_group_ref_cmp(&list[cnt - 1], &ref))
				continue;
			if (cnt == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct group_ref *nl =
					realloc(list, ncap * sizeof *nl);
				if (!nl) {
					rc = mq_err(MQLOG_ENOMEM, "group list");
					goto out;
				}
				list = nl;
				cap = ncap;
			}
			list[cnt++] = ref;
		}
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
			rc = ix_fail(ix, rc, "%s walk", ix_db_names[dbs[d]]);
			goto out;
		}
		mdb_cursor_close(cur);
		cur = NULL;
	}
	rc = 0;
	if (cnt > 1) {
		size_t w = 1;
		qsort(list, cnt, sizeof *list, ix_group_ref_cmp);
		for (size_t i = 1; i < cnt; i++)
			if (ix_group_ref_cmp(&list[w - 1], &list[i]))
				list[w++] = list[i];
		cnt = w;
	}
	*out = list;
	*n = cnt;
	list = NULL;
out:
	if (cur)
		mdb_cursor_close(cur);
	ix_read_end(ix, txn);
	free(list);
	return rc;
}

/*
 * Delete every group record of topic id @tid (topic deletion).  Group keys
 * start with the group name, so this walks both databases whole; topics
 * are deleted rarely and groups are few.
 */
static int ix_group_drop_topic(struct index *ix, MDB_txn *txn, uint32_t tid)
{
	static const enum ix_db dbs[] = { DB_GROUP_MEMBERS, DB_GROUP_OFFSETS,
					  DB_INTENTS };
	uint8_t at[512];
	struct group_ref ref;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t rest;
	int rc;

	for (size_t d = 0; d < sizeof dbs / sizeof dbs[0]; d++) {
		rc = mdb_cursor_open(txn, ix->dbi[dbs[d]], &cur);
		if (rc)
			return ix_fail(ix, rc, "%s cursor",
				       ix_db_names[dbs[d]]);
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		while (rc == MDB_SUCCESS) {
			if (!ix_group_split(&k, &ref, &rest) ||
			    ref.tid != tid || k.mv_size > sizeof at) {
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
				continue;
			}
			memcpy(at, k.mv_data, k.mv_size);
			rc = mdb_cursor_del(cur, 0);
			if (rc)
				break;
			k = ix_val(at, k.mv_size);
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		}
		mdb_cursor_close(cur);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return ix_fail(ix, rc, "%s delete topic %u",
				       ix_db_names[dbs[d]], tid);
	}
	return 0;
}

/* ======================================================================== */
/* Interest retention: the groups registered on a topic                     */
/* ======================================================================== */

/* The distinct group names with a record of topic @tid in @db, appended to
 * *names (a growing array of GROUP_NAME_MAX + 1 byte slots). */
static int ix_interest_names(struct index *ix, MDB_txn *txn, enum ix_db db,
			     uint32_t tid, char (**names)[GROUP_NAME_MAX + 1],
			     size_t *n, size_t *cap)
{
	struct group_ref ref;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t rest;
	int rc;

	rc = mdb_cursor_open(txn, ix->dbi[db], &cur);
	if (rc)
		return ix_fail(ix, rc, "%s cursor", ix_db_names[db]);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		bool seen = false;

		if (!ix_group_split(&k, &ref, &rest) || ref.tid != tid)
			continue;
		for (size_t i = *n; i > 0 && !seen; i--)
			seen = strcmp((*names)[i - 1], ref.name) == 0;
		if (seen)
			continue;
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 8;
			char(*nn)[GROUP_NAME_MAX + 1] =
				realloc(*names, ncap * sizeof **names);
			if (!nn) {
				mdb_cursor_close(cur);
				return mq_err(MQLOG_ENOMEM, "interest groups");
			}
			*names = nn;
			*cap = ncap;
		}
		memcpy((*names)[(*n)++], ref.name, sizeof ref.name);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return ix_fail(ix, rc, "%s walk", ix_db_names[db]);
	return 0;
}

int index_interest_floor(struct index *ix, uint32_t tid, uint32_t part,
			 struct interest_floor *out)
{
	char(*names)[GROUP_NAME_MAX + 1] = NULL;
	uint8_t key[IX_GROUP_PREFIX_MAX + 4];
	size_t n = 0, cap = 0;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	memset(out, 0, sizeof *out);
	out->floor = GROUP_NO_OFFSET;
	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	rc = ix_interest_names(ix, txn, DB_GROUP_MEMBERS, tid, &names, &n,
			       &cap);
	if (!rc)
		rc = ix_interest_names(ix, txn, DB_GROUP_OFFSETS, tid, &names,
				       &n, &cap);
	for (size_t i = 0; i < n && !rc; i++) {
		struct group_part gp;
		uint64_t c = 0; /* never committed: holds everything */
		size_t plen = ix_group_prefix(key, names[i], tid);

		mq_be32(key + plen, part);
		k = ix_val(key, plen + 4);
		rc = mdb_get(txn, ix->dbi[DB_GROUP_OFFSETS], &k, &v);
		if (rc == MDB_SUCCESS) {
			if (!ix_dec_gpart(&v, &gp)) {
				rc = ix_corrupt(ix, DB_GROUP_OFFSETS,
						"bad entry");
				break;
			}
			if (gp.committed != GROUP_NO_OFFSET)
				c = gp.committed;
		} else if (rc != MDB_NOTFOUND) {
			rc = ix_fail(ix, rc, "group '%s' offset get", names[i]);
			break;
		}
		rc = 0;
		/* Ties go to the first name in sort order: stable output. */
		if (c < out->floor ||
		    (c == out->floor && strcmp(names[i], out->group) < 0)) {
			out->floor = c;
			memcpy(out->group, names[i], sizeof out->group);
		}
		out->groups++;
	}
	ix_read_end(ix, txn);
	free(names);
	if (rc)
		memset(out, 0, sizeof *out);
	return rc;
}

struct ix_gdel_args {
	const char *group;  /* group name */
	uint32_t tid;	    /* topic id */
	uint32_t nparts;    /* partitions of the topic */
	group_txn_fn check; /* may refuse (an error) after seeing the group */
	void *arg;	    /* its argument */
	size_t deleted;	    /* records removed */
};

static int ix_group_delete_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	static const enum ix_db dbs[] = { DB_GROUP_MEMBERS, DB_GROUP_OFFSETS };
	struct ix_gdel_args *a = arg;
	uint8_t key[IX_GROUP_PREFIX_MAX + 8];
	size_t plen = ix_group_prefix(key, a->group, a->tid);
	struct group_snap s;
	int rc;

	a->deleted = 0;
	rc = ix_group_load(ix, txn, a->group, a->tid, a->nparts, &s);
	if (rc)
		return rc;
	rc = a->check(&s, a->arg);
	group_snap_free(&s);
	if (rc)
		return rc;
	for (size_t d = 0; d < sizeof dbs / sizeof dbs[0]; d++) {
		MDB_cursor *cur;
		MDB_val k, v;

		rc = mdb_cursor_open(txn, ix->dbi[dbs[d]], &cur);
		if (rc)
			return ix_fail(ix, rc, "%s cursor",
				       ix_db_names[dbs[d]]);
		for (;;) {
			k = ix_val(key, plen);
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			if (rc != MDB_SUCCESS || !ix_has_prefix(&k, key, plen))
				break;
			rc = mdb_cursor_del(cur, 0);
			if (rc)
				break;
			a->deleted++;
		}
		mdb_cursor_close(cur);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return ix_fail(ix, rc, "%s delete group '%s'",
				       ix_db_names[dbs[d]], a->group);
	}
	if (a->deleted == 0)
		return mq_err(MQLOG_ENOENT,
			      "group '%s': no record on the topic", a->group);
	return 0;
}

int index_group_delete(struct index *ix, const char *group, uint32_t tid,
		       uint32_t nparts, group_txn_fn check, void *arg)
{
	struct ix_gdel_args a = {
		.group = group,
		.tid = tid,
		.nparts = nparts,
		.check = check,
		.arg = arg,
	};
	int rc = ix_group_check(ix, group);

	if (rc)
		return rc;
	return ix_update(ix, true, ix_group_delete_txn, &a);
}

/*
 * Committed offsets ahead of the log (a power cut kept a durable group
 * commit but lost the unsynced log tail it counted): walk group_offsets
 * for (tid, part) and, when @write, set every committed offset above @end
 * to @end.  *n gets how many there are.
 */
struct ix_clamp_args {
	uint32_t tid, part; /* the partition */
	uint64_t end;	    /* its recovered log end */
	bool write;	    /* rewrite them (in a write transaction) */
	uint64_t n;	    /* found above end */
};

static int ix_group_clamp_walk(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_clamp_args *a = arg;
	struct group_ref ref;
	struct group_part gp;
	uint8_t v[IX_GPART_VAL_SIZE];
	MDB_cursor *cur;
	MDB_val k, val;
	size_t rest;
	int rc;

	a->n = 0;
	rc = mdb_cursor_open(txn, ix->dbi[DB_GROUP_OFFSETS], &cur);
	if (rc)
		return ix_fail(ix, rc, "group_offsets cursor");
	for (rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT)) {
		if (!ix_group_split(&k, &ref, &rest) || rest != 4 ||
		    ref.tid != a->tid ||
		    mq_ldbe32((const uint8_t *)k.mv_data + k.mv_size - 4) !=
			    a->part ||
		    !ix_dec_gpart(&val, &gp))
			continue; /* not this partition (or reported by load) */
		if (gp.committed == GROUP_NO_OFFSET || gp.committed <= a->end)
			continue;
		a->n++;
		if (!a->write)
			continue;
		gp.committed = a->end;
		gp.commit_ms = mq_now_ms();
		ix_enc_gpart(v, &gp);
		val = ix_val(v, sizeof v);
		rc = mdb_cursor_put(cur, &k, &val, MDB_CURRENT);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return ix_fail(ix, rc,
			       "group_offsets clamp of topic %u "
			       "partition %u",
			       a->tid, a->part);
	return 0;
}

int index_group_clamp(struct index *ix, uint32_t tid, uint32_t part,
		      uint64_t end, uint64_t *clamped)
{
	struct ix_clamp_args a = { .tid = tid, .part = part, .end = end };
	MDB_txn *txn;
	int rc;

	*clamped = 0;
	/* A read first: the usual answer is "none", which writes nothing. */
	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	rc = ix_group_clamp_walk(ix, txn, &a);
	ix_read_end(ix, txn);
	if (rc || a.n == 0)
		return rc;
	a.write = true;
	rc = ix_update(ix, true, ix_group_clamp_walk, &a);
	if (rc == 0)
		*clamped = a.n;
	return rc;
}

/* ======================================================================== */
/* Delivery intents                                                         */
/* ======================================================================== */

/*
 * A delivery intent records, in the same write transaction as a group's
 * offset commit, that the record at (tid, part, offset) must be appended
 * elsewhere (a retry topic, a dead-letter topic, the origin topic of a
 * replay).  Segments and LMDB are different stores: the intent makes the
 * pair "commit past the record, append its copy" recoverable, since
 * whoever next owns the source partition finds the intent and completes
 * it (dlq.c).  Key: group name, NUL, u32 tid, u32 part, u64 offset, all
 * big-endian; value: opaque to this module (dlq.c encodes it).
 */
#define IX_INTENT_KEY_MAX (IX_GROUP_PREFIX_MAX + 12)

static size_t ix_intent_key(uint8_t *k, const char *group, uint32_t tid,
			    uint32_t part, uint64_t offset)
{
	size_t n = ix_group_prefix(k, group, tid);

	mq_be32(k + n, part);
	mq_be64(k + n + 4, offset);
	return n + 12;
}

struct ix_intent_args {
	struct ix_group_args g; /* the group change */
	uint32_t part;		/* source partition */
	uint64_t offset;	/* source offset */
	const void *val;	/* the intent */
	size_t len;		/* its bytes */
};

static int ix_intent_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_intent_args *a = arg;
	uint8_t key[IX_INTENT_KEY_MAX];
	MDB_val k, v;
	int rc;

	rc = ix_group_txn(ix, txn, &a->g);
	if (rc)
		return rc;
	k = ix_val(key, ix_intent_key(key, a->g.group, a->g.tid, a->part,
				      a->offset));
	v = ix_val((void *)(uintptr_t)a->val, a->len);
	rc = mdb_put(txn, ix->dbi[DB_INTENTS], &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return mq_err(MQLOG_EEXIST,
			      "group '%s' topic id %u partition %u offset "
			      "%" PRIu64 ": a delivery of this record is "
			      "already pending",
			      a->g.group, a->g.tid, a->part, a->offset);
	if (rc == MDB_MAP_FULL)
		return rc;
	if (rc)
		return ix_fail(ix, rc, "intents put");
	return 0;
}

int index_group_update_intent(struct index *ix, const char *group, uint32_t tid,
			      uint32_t nparts, group_txn_fn fn, void *arg,
			      uint32_t part, uint64_t offset, const void *val,
			      size_t len)
{
	struct ix_intent_args a = {
		.g = { .group = group,
		       .tid = tid,
		       .nparts = nparts,
		       .fn = fn,
		       .arg = arg },
		.part = part,
		.offset = offset,
		.val = val,
		.len = len,
	};
	int rc = ix_group_check(ix, group);

	if (rc)
		return rc;
	return ix_update(ix, true, ix_intent_txn, &a);
}

struct ix_intent_del_args {
	const uint8_t *key; /* the intent's key */
	size_t klen;	    /* its bytes */
};

static int ix_intent_del_txn(struct index *ix, MDB_txn *txn, void *arg)
{
	struct ix_intent_del_args *a = arg;
	MDB_val k = ix_val((void *)(uintptr_t)a->key, a->klen);
	int rc = mdb_del(txn, ix->dbi[DB_INTENTS], &k, NULL);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == MDB_MAP_FULL)
		return rc;
	return rc ? ix_fail(ix, rc, "intents delete") : 0;
}

int index_intent_del(struct index *ix, const char *group, uint32_t tid,
		     uint32_t part, uint64_t offset)
{
	uint8_t key[IX_INTENT_KEY_MAX];
	struct ix_intent_del_args a = { .key = key };
	int rc = ix_group_check(ix, group);

	if (rc)
		return rc;
	a.klen = ix_intent_key(key, group, tid, part, offset);
	/* Not forced to disk: an intent that comes back after a power cut
	 * is completed again, idempotently. */
	return ix_update(ix, false, ix_intent_del_txn, &a);
}

void index_intents_free(struct intent_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].val);
	free(items);
}

int index_intent_list(struct index *ix, const char *group, uint32_t tid,
		      uint32_t part, struct intent_item **out, size_t *n)
{
	uint8_t key[IX_INTENT_KEY_MAX];
	struct intent_item *list = NULL, *grown;
	size_t cnt = 0, cap = 0, plen;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k, v;
	int rc = ix_group_check(ix, group);

	if (rc)
		return rc;
	*out = NULL;
	*n = 0;
	if (ix->no_intents)
		return 0;
	/* The prefix covers the partition when one is named. */
	plen = ix_intent_key(key, group, tid, part, 0) -
	       (part == UINT32_MAX ? 12 : 8);
	rc = ix_read_begin(ix, &txn);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, ix->dbi[DB_INTENTS], &cur);
	if (rc) {
		rc = ix_fail(ix, rc, "intents cursor");
		goto out;
	}
	k = ix_val(key, plen);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS) {
		const uint8_t *kp = k.mv_data;

		if (k.mv_size < plen || memcmp(kp, key, plen) != 0)
			break;
		if (k.mv_size != plen + (part == UINT32_MAX ? 12 : 8)) {
			rc = ix_corrupt(ix, DB_INTENTS, "bad intent key");
			goto out;
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(list, cap * sizeof *list);
			if (!grown) {
				rc = mq_err(MQLOG_ENOMEM, "intents list");
				goto out;
			}
			list = grown;
		}
		list[cnt].part = mq_ldbe32(kp + k.mv_size - 12);
		list[cnt].offset = mq_ldbe64(kp + k.mv_size - 8);
		list[cnt].len = v.mv_size;
		list[cnt].val = malloc(v.mv_size ? v.mv_size : 1);
		if (!list[cnt].val) {
			rc = mq_err(MQLOG_ENOMEM, "intents list");
			goto out;
		}
		memcpy(list[cnt].val, v.mv_data, v.mv_size);
		cnt++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND || rc == MDB_SUCCESS) {
		rc = 0;
		*out = list;
		*n = cnt;
		list = NULL;
		cnt = 0;
	} else if (rc > 0) {
		rc = ix_fail(ix, rc, "intents walk");
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	ix_read_end(ix, txn);
	index_intents_free(list, cnt);
	return rc;
}
