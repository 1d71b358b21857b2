/*
 * helpers.h - small helpers shared by the Check suites (header only: every
 * function is static inline, so a suite that does not use one pays nothing
 * and gets no unused-function warning).
 *
 * They wrap the public API with assertions so that a test reads as the
 * behaviour it checks, and they give tests raw views of the files of a data
 * directory (segment lists, a batch walker, a sparse-aware tree copy).
 */
#ifndef MQLOG_TEST_HELPERS_H
#define MQLOG_TEST_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SEEK_DATA, strcasestr; must precede system headers */
#endif

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "mqlog.h"

/* Raw batch header fields used by tests that look at segment files. */
#define H_BATCH_MAGIC 0x4D514C01u
#define H_BATCH_HDR   68u

/* ------------------------------------------------------------------------ */
/* Clocks                                                                   */
/* ------------------------------------------------------------------------ */

/* Monotonic clock in ms (comparable across processes on one host). */
static inline double h_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Wall clock in ms since the epoch. */
static inline int64_t h_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void h_sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
			       (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------------ */
/* API wrappers that assert success                                          */
/* ------------------------------------------------------------------------ */

static inline mqlog *h_open(const char *dir)
{
	mqlog *db = NULL;
	int rc = mqlog_open(dir, NULL, &db);
	ck_assert_msg(rc == 0, "mqlog_open(%s) = %d %s: %s", dir, rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	ck_assert_ptr_nonnull(db);
	return db;
}

static inline mqlog_topic_config h_cfg(uint32_t partitions,
				       uint64_t segment_bytes, int sync)
{
	mqlog_topic_config c;
	mqlog_topic_config_init(&c);
	c.partitions = partitions;
	c.segment_bytes = segment_bytes;
	c.sync = sync;
	return c;
}

static inline void h_create(mqlog *db, const char *name,
			    const mqlog_topic_config *cfg)
{
	int rc = mqlog_topic_create(db, name, cfg);
	ck_assert_msg(rc == 0, "mqlog_topic_create(%s) = %d %s: %s", name, rc,
		      mqlog_errname(rc), mqlog_errmsg(db));
}

static inline mqlog_topic *h_topic(mqlog *db, const char *name)
{
	mqlog_topic *t = NULL;
	int rc = mqlog_topic_open(db, name, &t);
	ck_assert_msg(rc == 0, "mqlog_topic_open(%s) = %d %s: %s", name, rc,
		      mqlog_errname(rc), mqlog_errmsg(db));
	ck_assert_ptr_nonnull(t);
	return t;
}

static inline struct mqlog_partition_info h_info(mqlog_topic *t, uint32_t part)
{
	struct mqlog_partition_info info;
	int rc;
	memset(&info, 0xA5, sizeof info);
	rc = mqlog_partition_stat(t, part, &info);
	ck_assert_msg(rc == 0, "mqlog_partition_stat(%u) = %d %s: %s", part, rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	return info;
}

/* A record with a null key and @val (a C string, without its NUL). */
static inline mqlog_msg h_msg(const char *val, int64_t ts)
{
	mqlog_msg m;
	memset(&m, 0, sizeof m);
	m.value.data = val;
	m.value.len = strlen(val);
	m.timestamp = ts;
	return m;
}

/* Append @n string values as one batch; returns the base offset. */
static inline uint64_t h_append_strs(mqlog_topic *t, uint32_t part,
				     const char *const *vals, size_t n,
				     int64_t ts, int sync)
{
	mqlog_msg msgs[64];
	uint64_t base = UINT64_MAX;
	int rc;
	ck_assert_uint_le(n, 64);
	for (size_t i = 0; i < n; i++)
		msgs[i] = h_msg(vals[i], ts);
	rc = mqlog_append(t, part, msgs, n, sync, &base);
	ck_assert_msg(rc == 0, "mqlog_append(part %u, %zu records) = %d %s: %s",
		      part, n, rc, mqlog_errname(rc), mqlog_errmsg(NULL));
	return base;
}

/* Append one string value; returns its offset. */
static inline uint64_t h_append1(mqlog_topic *t, uint32_t part, const char *val)
{
	return h_append_strs(t, part, &val, 1, MQLOG_TIMESTAMP_NOW,
			     MQLOG_SYNC_DEFAULT);
}

/* ------------------------------------------------------------------------ */
/* Reading everything back as copies                                        */
/* ------------------------------------------------------------------------ */

struct h_rec {
	uint64_t off; /* record offset */
	int64_t ts;   /* timestamp */
	char *val;    /* copy of the value, NUL-terminated (NULL if null) */
	size_t vlen;  /* value length */
	char *key;    /* copy of the key, NUL-terminated (NULL if null) */
	size_t klen;  /* key length */
	uint32_t nh;  /* header count */
	uint32_t partition; /* rec->partition */
};

struct h_recs {
	struct h_rec *r; /* records in read order */
	size_t n;	 /* number of records */
	size_t cap;	 /* allocated */
};

static inline char *h_dup_bytes(mqlog_bytes b)
{
	char *s;
	if (!b.data)
		return NULL;
	s = malloc(b.len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, b.data, b.len);
	s[b.len] = '\0';
	return s;
}

static inline void h_recs_push(struct h_recs *out, const mqlog_record *rec)
{
	struct h_rec *x;
	if (out->n == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 64;
		out->r = realloc(out->r, out->cap * sizeof *out->r);
		ck_assert_ptr_nonnull(out->r);
	}
	x = &out->r[out->n++];
	x->off = rec->offset;
	x->ts = rec->timestamp;
	x->val = h_dup_bytes(rec->value);
	x->vlen = rec->value.len;
	x->key = h_dup_bytes(rec->key);
	x->klen = rec->key.len;
	x->nh = rec->header_count;
	x->partition = rec->partition;
}

static inline void h_recs_free(struct h_recs *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->r[i].val);
		free(rs->r[i].key);
	}
	free(rs->r);
	rs->r = NULL;
	rs->n = rs->cap = 0;
}

/*
 * Read partition @part from offset @from (or MQLOG_OFFSET_EARLIEST) to the
 * end; returns the reader's final rc (0 at a clean end, or an error, which
 * the caller checks).  Records read before an error are kept in @out.
 */
static inline int h_read_from(mqlog_topic *t, uint32_t part, uint64_t from,
			      struct h_recs *out)
{
	mqlog_reader *r = NULL;
	mqlog_record rec;
	int rc = mqlog_reader_open(t, part, &r);
	ck_assert_msg(rc == 0, "mqlog_reader_open = %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	rc = mqlog_reader_seek(r, from);
	ck_assert_msg(rc == 0, "mqlog_reader_seek(%" PRIu64 ") = %d %s: %s",
		      from, rc, mqlog_errname(rc), mqlog_errmsg(NULL));
	while ((rc = mqlog_reader_next(r, &rec)) == 1) {
		ck_assert_uint_eq(rec.partition, part);
		h_recs_push(out, &rec);
	}
	mqlog_reader_close(r);
	return rc;
}

/* Read everything of @part and assert a clean end. */
static inline void h_read_all(mqlog_topic *t, uint32_t part, struct h_recs *out)
{
	int rc = h_read_from(t, part, MQLOG_OFFSET_EARLIEST, out);
	ck_assert_msg(rc == 0, "reading partition %u: %d %s: %s", part, rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
}

/* ------------------------------------------------------------------------ */
/* Files of a data directory                                                */
/* ------------------------------------------------------------------------ */

static inline const char *h_part_dir(const char *dir, const char *topic,
				     uint32_t part)
{
	return fx_path("%s/topics/%s/%u", dir, topic, part);
}

static inline const char *h_seg_path(const char *dir, const char *topic,
				     uint32_t part, uint64_t base)
{
	return fx_path("%s/topics/%s/%u/%020" PRIu64 ".seg", dir, topic, part,
		       base);
}

static inline int h_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * The base offsets of the .seg files of a partition, sorted; returns the
 * number found (at most @max stored).  Asserts every .seg name is 20 digits.
 */
static inline size_t h_seg_list(const char *dir, const char *topic,
				uint32_t part, uint64_t *bases, size_t max)
{
	DIR *d = opendir(h_part_dir(dir, topic, part));
	struct dirent *e;
	size_t n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len < 4 || strcmp(e->d_name + len - 4, ".seg") != 0)
			continue;
		ck_assert_msg(len == 24, "segment name %s is not 20 digits",
			      e->d_name);
		for (size_t i = 0; i < 20; i++)
			ck_assert_msg(e->d_name[i] >= '0' &&
					      e->d_name[i] <= '9',
				      "segment name %s", e->d_name);
		if (n < max)
			bases[n] = strtoull(e->d_name, NULL, 10);
		n++;
	}
	closedir(d);
	qsort(bases, n < max ? n : max, sizeof *bases, h_u64_cmp);
	return n;
}

static inline uint64_t h_size(const char *path)
{
	uint64_t sz = 0;
	int rc = fx_file_size(path, &sz);
	ck_assert_msg(rc == 0, "stat %s: %s", path, strerror(-rc));
	return sz;
}

static inline int h_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Read a whole file into a malloc'd buffer; *len gets its size. */
static inline unsigned char *h_slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	while (got < (size_t)st.st_size) {
		ssize_t k = pread(fd, buf + got, (size_t)st.st_size - got,
				  (off_t)got);
		ck_assert_int_gt(k, 0);
		got += (size_t)k;
	}
	close(fd);
	*len = got;
	return buf;
}

/* One batch found by h_walk. */
struct h_batch {
	uint64_t pos;	/* byte position in the file */
	uint32_t len;	/* batch length */
	uint64_t base;	/* base offset */
	uint32_t count; /* record count */
};

/*
 * Walk the batch headers of a segment file by magic and length only (no
 * checksum: the file is assumed pristine).  Returns the number of batches
 * (at most @max stored); *data_end gets the end of the last batch.
 */
static inline size_t h_walk(const char *path, struct h_batch *out, size_t max,
			    uint64_t *data_end)
{
	size_t len, n = 0;
	uint64_t pos = 0;
	unsigned char *buf = h_slurp(path, &len);
	while (pos + H_BATCH_HDR <= len) {
		uint32_t magic, blen, cnt;
		uint64_t base;
		memcpy(&magic, buf + pos, 4);
		memcpy(&blen, buf + pos + 4, 4);
		memcpy(&base, buf + pos + 16, 8);
		memcpy(&cnt, buf + pos + 36, 4);
		if (magic != H_BATCH_MAGIC || blen < H_BATCH_HDR ||
		    pos + blen > len)
			break;
		if (n < max) {
			out[n].pos = pos;
			out[n].len = blen;
			out[n].base = base;
			out[n].count = cnt;
		}
		n++;
		pos += blen;
	}
	free(buf);
	if (data_end)
		*data_end = pos;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Whole-tree copy (sparse aware, so a large sparse data.mdb is cheap)      */
/* ------------------------------------------------------------------------ */

static inline int h_copy_sparse(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	struct stat st;
	off_t pos = 0;
	int rc = 0;
	if (in < 0)
		return -errno;
	if (fstat(in, &st) != 0) {
		close(in);
		return -errno;
	}
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, st.st_mode & 07777);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while (pos < st.st_size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;
		if (data < 0)
			break; /* only a hole is left */
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		for (off_t p = data; p < hole;) {
			size_t want = (size_t)(hole - p) < sizeof buf ?
					      (size_t)(hole - p) :
					      sizeof buf;
			ssize_t k = pread(in, buf, want, p);
			if (k <= 0 || pwrite(out, buf, (size_t)k, p) != k) {
				rc = -EIO;
				goto done;
			}
			p += k;
		}
		pos = hole;
	}
	if (ftruncate(out, st.st_size) != 0)
		rc = -errno;
done:
	close(in);
	close(out);
	return rc;
}

/* Copy the tree @from to @to (which must not exist). */
static inline int h_copy_tree(const char *from, const char *to)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;
	if (mkdir(to, 0755) != 0)
		return -errno;
	d = opendir(from);
	if (!d)
		return -errno;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char a[4096], b[4096];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(a, sizeof a, "%s/%s", from, e->d_name);
		snprintf(b, sizeof b, "%s/%s", to, e->d_name);
		if (lstat(a, &st) != 0)
			rc = -errno;
		else if (S_ISDIR(st.st_mode))
			rc = h_copy_tree(a, b);
		else if (S_ISREG(st.st_mode))
			rc = h_copy_sparse(a, b);
	}
	closedir(d);
	return rc;
}

/* Number of entries (other than . and ..) in a directory; -1 if missing. */
static inline int h_dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Case-insensitive substring test, NULL-safe. */
static inline int h_contains(const char *hay, const char *needle)
{
	return hay && needle && strcasestr(hay, needle) != NULL;
}

/* Assert that the thread's last error message contains @needle. */
#define h_msg_has(needle)                                                \
	ck_assert_msg(h_contains(mqlog_errmsg(NULL), (needle)),          \
		      "message \"%s\" lacks \"%s\"", mqlog_errmsg(NULL), \
		      (needle))

/* Options of a group member that commits on every poll, with the given
 * heartbeat and lease. */
static inline mqlog_consumer_options
h_group_opts(const char *group, uint32_t heartbeat_ms, uint32_t lease_ms)
{
	mqlog_consumer_options o;

	mqlog_consumer_options_init(&o);
	o.group = group;
	o.heartbeat_ms = heartbeat_ms;
	o.lease_ms = lease_ms;
	o.auto_commit_interval_ms = 0;
	return o;
}

/* A member of @group on @t with h_group_opts(); asserts the open. */
static inline mqlog_consumer *h_open_group(mqlog_topic *t, const char *group,
					   uint32_t heartbeat_ms,
					   uint32_t lease_ms)
{
	mqlog_consumer_options o = h_group_opts(group, heartbeat_ms, lease_ms);
	mqlog_consumer *c = NULL;
	int rc = mqlog_consumer_open(t, &o, &c);

	ck_assert_msg(rc == 0, "mqlog_consumer_open = %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	return c;
}

/* Assert that a failing call left a non-empty thread message. */
#define H_ASSERT_MSG(db)                                            \
	do {                                                        \
		const char *m_ = mqlog_errmsg(db);                  \
		ck_assert_ptr_nonnull(m_);                          \
		ck_assert_msg(m_[0] != '\0', "empty mqlog_errmsg"); \
	} while (0)

/* Deterministic PRNG (xorshift64*) so every run sees the same data. */
static inline uint64_t h_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(2685821657736338717);
}

/* Standard main(): run one suite, return nonzero on any failure. */
#define H_MAIN(suite_fn)                                   \
	int main(void)                                     \
	{                                                  \
		SRunner *sr_ = srunner_create(suite_fn()); \
		int nf_;                                   \
		srunner_run_all(sr_, CK_NORMAL);           \
		nf_ = srunner_ntests_failed(sr_);          \
		srunner_free(sr_);                         \
		return nf_ == 0 ? 0 : 1;                   \
	}

#endif
