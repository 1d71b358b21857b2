/*
 * dlq.c - retries, dead letters, delayed delivery and expiry: the reserved
 * headers, delivery intents and their idempotent completion, scheduling
 * and the replay of a dead-letter topic.
 *
 * A nack moves a record out of its partition: the group commits past it
 * and a copy goes to <topic>.retry (or, after max_attempts deliveries, to
 * <topic>.dlq).  Segments and LMDB are different stores, so the two steps
 * are tied together by a delivery intent:
 *
 *   1. one durable LMDB transaction: the fenced offset commit past the
 *      record and the intent (the whole copy to append, its destination,
 *      and the destination's end offset at that moment, the "hint");
 *   2. the append of the copy to the destination, fdatasync'ed;
 *   3. the intent is deleted (not forced: a resurrected intent is
 *      completed again, idempotently).
 *
 * A crash before 1 leaves the record uncommitted: it is delivered again
 * from its partition.  A crash after 1 leaves the intent: whoever claims
 * the source partition next (this process reopening, or another member)
 * completes it, appending the copy only when no record at or after the
 * hint carries the intent's mqlog.source header.  Hence the record is
 * neither lost nor doubled, whichever step the crash interrupts.  The
 * same machinery replays a dead-letter topic into its origin topic.
 *
 * Intent encoding (little-endian):
 *
 *   off  size  field
 *     0     2  version (1)
 *     2     2  kind                 enum dlq_kind
 *     4     4  destination partition
 *     8     4  partitions to create the destination with
 *    12     4  sync policy to create it with (i32)
 *    16     8  hint                 destination end offset before step 1
 *    24     8  timestamp            of the copy (i64; INT64_MIN: now)
 *    32     2  n = destination topic name length, then n bytes
 *     .     2  n = mqlog.source value length, then n bytes
 *     .     4  key length (0xFFFFFFFF: null), then the key
 *     .     4  value length (0xFFFFFFFF: null), then the value
 *     .     4  header count, then per header: u32 key length, key,
 *              u32 value length (0xFFFFFFFF: null), value
 *   end-8   8  XXH3-64 of everything before it
 */
#include "dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_NULL_LEN	   0xFFFFFFFFu
#define DLQ_INTENT_VERSION 1u
#define DLQ_HDR_STACK	   32 /* headers decoded without an allocation */

/* ======================================================================== */
/* Reserved headers                                                         */
/* ======================================================================== */

static bool parse_i64(mqlog_bytes b, int64_t *out)
{
	const char *p = b.data;
	int64_t v = 0;
	bool neg = false;
	size_t i = 0;

	if (!p || b.len == 0 || b.len > 20)
		return false;
	if (p[0] == '-') {
		neg = true;
		i = 1;
		if (b.len == 1)
			return false;
	}
	for (; i < b.len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (v > (INT64_MAX - (p[i] - '0')) / 10)
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

static bool key_is(const mqlog_header *h, const char *name)
{
	size_t n = strlen(name);

	return h->key.len == n && memcmp(h->key.data, name, n) == 0;
}

static void meta_take(struct dlq_meta *m, const mqlog_header *h)
{
	int64_t v;

	if (h->key.len < sizeof DLQ_H_PREFIX - 1 ||
	    memcmp(h->key.data, DLQ_H_PREFIX, sizeof DLQ_H_PREFIX - 1) != 0)
		return;
	if (key_is(h, DLQ_H_ATTEMPT)) {
		if (parse_i64(h->value, &v) && v >= 0 && v <= UINT32_MAX) {
			m->has_attempt = true;
			m->attempt = (uint32_t)v;
		}
	} else if (key_is(h, DLQ_H_DUE)) {
		if (parse_i64(h->value, &v))
			m->due = v;
	} else if (key_is(h, DLQ_H_EXPIRES)) {
		if (parse_i64(h->value, &v))
			m->expires = v;
	} else if (key_is(h, DLQ_H_GROUP)) {
		m->group = h->value;
	}
}

int dlq_meta_get(const mqlog_record *rec, struct dlq_meta *m)
{
	mqlog_header hs[DLQ_HDR_STACK];
	int n;

	m->has_attempt = false;
	m->attempt = 0;
	m->due = INT64_MIN;
	m->expires = INT64_MAX;
	m->group.data = NULL;
	m->group.len = 0;
	if (rec->header_count == 0)
		return 0;
	if (rec->header_count <= DLQ_HDR_STACK) {
		n = mqlog_record_headers(rec, hs, DLQ_HDR_STACK);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			meta_take(m, &hs[i]);
		return 0;
	}
	/* Many headers: look the few names up one by one. */
	{
		static const char *const names[] = { DLQ_H_ATTEMPT, DLQ_H_DUE,
						     DLQ_H_EXPIRES,
						     DLQ_H_GROUP };
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			mqlog_header h = { { names[i], strlen(names[i]) },
					   { NULL, 0 } };
			int rc = mqlog_record_header(
				rec, names[i], strlen(names[i]), &h.value);
			if (rc < 0)
				return rc;
			if (rc == 1)
				meta_take(m, &h);
		}
	}
	return 0;
}

bool dlq_is_derived_name(const char *topic)
{
	size_t n = strlen(topic);
	size_t r = sizeof DLQ_RETRY_SUFFIX - 1, d = sizeof DLQ_DLQ_SUFFIX - 1;

	return (n > r && !strcmp(topic + n - r, DLQ_RETRY_SUFFIX)) ||
	       (n > d && !strcmp(topic + n - d, DLQ_DLQ_SUFFIX));
}

int dlq_ensure_topic(mqlog *db, const char *name, uint32_t partitions, int sync,
		     mqlog_topic **out)
{
	mqlog_topic_config cfg;
	int rc = mqlog_topic_open(db, name, out);

	if (rc != MQLOG_ENOENT)
		return rc;
	mqlog_topic_config_init(&cfg);
	cfg.partitions = partitions;
	cfg.sync = sync;
	rc = mqlog_topic_create(db, name, &cfg);
	if (rc && rc != MQLOG_EEXIST) /* another member may have won */
		return mq_err_wrap(rc, "create %s", name);
	return mqlog_topic_open(db, name, out);
}

/* ======================================================================== */
/* Intent encoding                                                          */
/* ======================================================================== */

struct wbuf {
	uint8_t *p;  /* bytes */
	size_t len;  /* used */
	size_t cap;  /* allocated */
	bool failed; /* an allocation failed */
};

static void w_need(struct wbuf *w, size_t n)
{
	uint8_t *g;
	size_t cap;

	if (w->failed || w->len + n <= w->cap)
		return;
	cap = w->cap ? w->cap : 256;
	while (cap < w->len + n)
		cap *= 2;
	g = realloc(w->p, cap);
	if (!g) {
		w->failed = true;
		return;
	}
	w->p = g;
	w->cap = cap;
}

static void w_raw(struct wbuf *w, const void *d, size_t n)
{
	w_need(w, n);
	if (w->failed)
		return;
	if (n)
		memcpy(w->p + w->len, d, n);
	w->len += n;
}

static void w_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2];
	mq_st16(b, v);
	w_raw(w, b, 2);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];
	mq_st32(b, v);
	w_raw(w, b, 4);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];
	mq_st64(b, v);
	w_raw(w, b, 8);
}

/* A byte run with a u32 length, 0xFFFFFFFF for null. */
static void w_bytes(struct wbuf *w, mqlog_bytes b)
{
	if (!b.data) {
		w_u32(w, DLQ_NULL_LEN);
		return;
	}
	w_u32(w, (uint32_t)b.len);
	w_raw(w, b.data, b.len);
}

static void w_str16(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);
	w_u16(w, (uint16_t)n);
	w_raw(w, s, n);
}

static void w_header(struct wbuf *w, const char *key, const char *val)
{
	mqlog_bytes k = { key, strlen(key) }, v = { val, strlen(val) };
	w_bytes(w, k);
	w_bytes(w, v);
}

static void w_header_u64(struct wbuf *w, const char *key, uint64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRIu64, v);
	w_header(w, key, num);
}

static void w_header_i64(struct wbuf *w, const char *key, int64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%" PRId64, v);
	w_header(w, key, num);
}

/* Reserved headers that a copy carries over unchanged. */
static bool keep_reserved(const mqlog_header *h, bool keep_origin)
{
	if (key_is(h, DLQ_H_EXPIRES))
		return true;
	if (!keep_origin)
		return false;
	return key_is(h, DLQ_H_OTOPIC) || key_is(h, DLQ_H_OPART) ||
	       key_is(h, DLQ_H_OOFF) || key_is(h, DLQ_H_OTS);
}

static bool reserved(const mqlog_header *h)
{
	return h->key.len >= sizeof DLQ_H_PREFIX - 1 &&
	       memcmp(h->key.data, DLQ_H_PREFIX, sizeof DLQ_H_PREFIX - 1) == 0;
}

int dlq_intent_encode(const struct dlq_copy *cp, uint8_t **buf, size_t *len)
{
	const mqlog_record *rec = cp->rec;
	struct wbuf w = { 0 };
	mqlog_header *hs = NULL;
	char source[MQLOG_TOPIC_NAME_MAX + GROUP_NAME_MAX + 48];
	size_t count_at;
	uint32_t count = 0;
	bool keep_origin = cp->origin_topic == NULL;
	int n = 0;

	if (rec->header_count) {
		hs = malloc(rec->header_count * sizeof *hs);
		if (!hs)
			return mq_err(MQLOG_ENOMEM, "nack: headers");
		n = mqlog_record_headers(rec, hs, rec->header_count);
		if (n < 0) {
			free(hs);
			return n;
		}
	}
	snprintf(source, sizeof source, "%s:%u:%" PRIu64 ":%s", cp->src_topic,
		 cp->src_partition, cp->src_offset, cp->group);

	w_u16(&w, DLQ_INTENT_VERSION);
	w_u16(&w, (uint16_t)cp->kind);
	w_u32(&w, cp->dest_partition);
	w_u32(&w, cp->create_partitions);
	w_u32(&w, (uint32_t)(int32_t)cp->create_sync);
	w_u64(&w, cp->hint);
	w_u64(&w, (uint64_t)MQLOG_TIMESTAMP_NOW);
	w_str16(&w, cp->dest);
	w_str16(&w, source);
	w_bytes(&w, rec->key);
	w_bytes(&w, rec->value);
	count_at = w.len;
	w_u32(&w, 0); /* header count, patched below */

	/* The record's own headers first, the reserved ones rewritten. */
	for (int i = 0; i < n; i++) {
		if (reserved(&hs[i]) && (cp->kind == DLQ_KIND_REPLAY ||
					 !keep_reserved(&hs[i], keep_origin)))
			continue;
		w_bytes(&w, hs[i].key);
		w_bytes(&w, hs[i].value);
		count++;
	}
	if (cp->kind != DLQ_KIND_REPLAY) {
		if (cp->origin_topic) {
			w_header(&w, DLQ_H_OTOPIC, cp->origin_topic);
			w_header_u64(&w, DLQ_H_OPART, cp->src_partition);
			w_header_u64(&w, DLQ_H_OOFF, cp->src_offset);
			w_header_i64(&w, DLQ_H_OTS, rec->timestamp);
			count += 4;
		}
		w_header(&w, DLQ_H_GROUP, cp->group);
		w_header_u64(&w, DLQ_H_ATTEMPT, cp->attempt);
		count += 2;
		if (cp->due != INT64_MIN) {
			w_header_i64(&w, DLQ_H_DUE, cp->due);
			count++;
		}
		if (cp->reason) {
			mqlog_bytes k = { DLQ_H_REASON,
					  sizeof DLQ_H_REASON - 1 };
			mqlog_bytes v = { cp->reason, strlen(cp->reason) };
			if (v.len > DLQ_REASON_MAX)
				v.len = DLQ_REASON_MAX;
			w_bytes(&w, k);
			w_bytes(&w, v);
			count++;
		}
	}
	w_header(&w, DLQ_H_SOURCE, source);
	count++;
	free(hs);
	if (w.failed) {
		free(w.p);
		return mq_err(MQLOG_ENOMEM, "nack: intent of %zu bytes", w.len);
	}
	mq_st32(w.p + count_at, count);
	w_u64(&w, record_key_hash(w.p, w.len));
	if (w.failed) {
		free(w.p);
		return mq_err(MQLOG_ENOMEM, "nack: intent");
	}
	*buf = w.p;
	*len = w.len;
	return 0;
}

/* A decoded intent; byte runs point into the buffer. */
struct intent {
	int kind;
	uint32_t dest_partition;
	uint32_t create_partitions;
	int create_sync;
	uint64_t hint;
	char dest[MQLOG_TOPIC_NAME_MAX + 1];
	mqlog_bytes source;
	mqlog_msg msg; /* headers malloc'd */
};

struct rbuf {
	const uint8_t *p, *end;
	bool bad;
};

static const uint8_t *r_take(struct rbuf *r, size_t n)
{
	const uint8_t *at = r->p;

	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	return at;
}

static uint32_t r_u32(struct rbuf *r)
{
	const uint8_t *p = r_take(r, 4);
	return p ? mq_ld32(p) : 0;
}

static uint16_t r_u16(struct rbuf *r)
{
	const uint8_t *p = r_take(r, 2);
	return p ? mq_ld16(p) : 0;
}

static uint64_t r_u64(struct rbuf *r)
{
	const uint8_t *p = r_take(r, 8);
	return p ? mq_ld64(p) : 0;
}

static mqlog_bytes r_bytes(struct rbuf *r)
{
	mqlog_bytes b = { NULL, 0 };
	uint32_t n = r_u32(r);

	if (n == DLQ_NULL_LEN)
		return b;
	b.data = r_take(r, n);
	b.len = b.data ? n : 0;
	return b;
}

static int intent_decode(const uint8_t *buf, size_t len, struct intent *it)
{
	struct rbuf r = { buf, buf + len - (len >= 8 ? 8 : len), false };
	mqlog_header *hs = NULL;
	uint16_t n;
	uint32_t count;

	memset(it, 0, sizeof *it);
	if (len < 40 || mq_ld64(buf + len - 8) != record_key_hash(buf, len - 8))
		return mq_err(MQLOG_ECORRUPT,
			      "delivery intent of %zu bytes: "
			      "checksum mismatch",
			      len);
	if (r_u16(&r) != DLQ_INTENT_VERSION)
		return mq_err(MQLOG_EVERSION, "delivery intent: version %u",
			      (unsigned)mq_ld16(buf));
	it->kind = r_u16(&r);
	it->dest_partition = r_u32(&r);
	it->create_partitions = r_u32(&r);
	it->create_sync = (int32_t)r_u32(&r);
	it->hint = r_u64(&r);
	it->msg.timestamp = (int64_t)r_u64(&r);
	n = r_u16(&r);
	if (n == 0 || n > MQLOG_TOPIC_NAME_MAX)
		goto bad;
	{
		const uint8_t *name = r_take(&r, n);
		if (!name)
			goto bad;
		memcpy(it->dest, name, n);
		it->dest[n] = '\0';
	}
	n = r_u16(&r);
	it->source.data = r_take(&r, n);
	it->source.len = n;
	it->msg.key = r_bytes(&r);
	it->msg.value = r_bytes(&r);
	count = r_u32(&r);
	if (r.bad || count > (size_t)(r.end - r.p) / 8)
		goto bad;
	if (count) {
		hs = calloc(count, sizeof *hs);
		if (!hs)
			return mq_err(MQLOG_ENOMEM, "delivery intent");
	}
	for (uint32_t i = 0; i < count; i++) {
		hs[i].key = r_bytes(&r);
		hs[i].value = r_bytes(&r);
		if (!hs[i].key.data && !r.bad)
			hs[i].key.data = ""; /* keys are never null */
	}
	if (r.bad || r.p != r.end ||
	    (it->kind < DLQ_KIND_RETRY || it->kind > DLQ_KIND_REPLAY)) {
		free(hs);
		goto bad;
	}
	it->msg.headers = hs;
	it->msg.header_count = count;
	return 0;
bad:
	return mq_err(MQLOG_ECORRUPT, "delivery intent of %zu bytes: malformed",
		      len);
}

/* ======================================================================== */
/* Delivery and completion                                                  */
/* ======================================================================== */

/* 1 when the partition holds, at or after @from, a record whose
 * mqlog.source is @source; 0 when not; or an error. */
static int dest_has(mqlog_topic *t, uint32_t part, uint64_t from,
		    mqlog_bytes source)
{
	mqlog_reader *r;
	mqlog_record rec;
	mqlog_bytes v;
	int rc;

	rc = mqlog_reader_open(t, part, &r);
	if (rc)
		return rc;
	if (from > mqlog_reader_position(r)) {
		rc = mqlog_reader_seek(r, from);
		/* Past the end (a power cut took the unsynced tail the hint
		 * counted, or the topic was made anew): nothing there can be
		 * the copy. */
		if (rc == MQLOG_ERANGE) {
			mqlog_reader_close(r);
			return 0;
		}
	}
	/* Below the start (retention removed the range): we cannot know,
	 * and appending again is the side that loses nothing. */
	while (rc == 0 && (rc = mqlog_reader_next(r, &rec)) == 1) {
		rc = 0;
		if (rec.header_count == 0)
			continue;
		rc = mqlog_record_header(&rec, DLQ_H_SOURCE,
					 sizeof DLQ_H_SOURCE - 1, &v);
		if (rc < 0)
			break;
		rc = 0;
		if (v.data && v.len == source.len &&
		    memcmp(v.data, source.data, v.len) == 0) {
			rc = 2;
			break;
		}
	}
	mqlog_reader_close(r);
	if (rc == 2)
		return 1;
	return rc;
}

int dlq_intent_deliver(mqlog *db, const uint8_t *buf, size_t len, bool check,
		       bool *appended)
{
	struct intent it;
	mqlog_topic *t = NULL;
	uint32_t part;
	int rc;

	if (appended)
		*appended = false;
	rc = intent_decode(buf, len, &it);
	if (rc)
		return rc;
	if (it.kind == DLQ_KIND_REPLAY)
		rc = mqlog_topic_open(db, it.dest, &t);
	else
		rc = dlq_ensure_topic(db, it.dest, it.create_partitions,
				      it.create_sync, &t);
	if (rc) {
		mq_err_wrap(rc, "deliver to %s", it.dest);
		goto out;
	}
	part = it.dest_partition % mqlog_topic_partitions(t);
	if (check) {
		rc = dest_has(t, part, it.hint, it.source);
		if (rc < 0) {
			mq_err_wrap(rc, "deliver to %s partition %u", it.dest,
				    part);
			goto out;
		}
		if (rc == 1) {
			rc = 0;
			goto out;
		}
	}
	rc = mqlog_append(t, part, &it.msg, 1, MQLOG_SYNC_ALWAYS, NULL);
	if (rc) {
		mq_err_wrap(rc, "deliver to %s partition %u", it.dest, part);
		goto out;
	}
	if (appended)
		*appended = true;
out:
	if (t)
		mqlog_topic_close(t);
	free((void *)(uintptr_t)it.msg.headers);
	return rc;
}

int dlq_complete(mqlog *db, const char *group, uint32_t tid, uint32_t partition,
		 uint64_t *done)
{
	struct intent_item *items;
	size_t n;
	int rc;

	if (done)
		*done = 0;
	rc = index_intent_list(db->ix, group, tid, partition, &items, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = dlq_intent_deliver(db, items[i].val, items[i].len, true,
					NULL);
		if (rc)
			break;
		rc = index_intent_del(db->ix, group, tid, items[i].part,
				      items[i].offset);
		if (rc)
			break;
		if (done)
			(*done)++;
	}
	index_intents_free(items, n);
	return rc;
}
