/*
 * test_index.c - the LMDB environment (index.c): topics, partitions, the
 * derived offset/time/segment indexes, map growth, several processes, and
 * the topic configuration encoding.
 */
#include "internal.h"
#include "fixture.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

#define SMALL_MAP (64u << 10) /* a map that must grow for any real load */

static char meta[4096]; /* fx_dir/meta of the current test */

static void set_meta(void)
{
	snprintf(meta, sizeof meta, "%s/meta", fx_dir);
}

static struct index *open_ix(uint64_t map_size)
{
	struct index *ix = NULL;
	int rc = index_open(meta, false, map_size, &ix);

	ck_assert_msg(rc == 0, "index_open: %d %s", rc, mqlog_errmsg(NULL));
	ck_assert_ptr_nonnull(ix);
	return ix;
}

static struct index *open_ix_rdonly(void)
{
	struct index *ix = NULL;
	int rc = index_open(meta, true, 0, &ix);

	ck_assert_msg(rc == 0, "index_open rdonly: %d %s", rc,
		      mqlog_errmsg(NULL));
	return ix;
}

/* Write one offset entry whose position encodes where it came from. */
static void put_off(struct index *ix, uint32_t tid, uint32_t part,
		    uint64_t offset)
{
	struct index_entry e = { .offset = offset,
				 .seg_base = offset / 2,
				 .pos = offset * 3 + tid + part };
	int rc = index_write(ix, tid, part, &e, 1, NULL, 0, NULL, 0);

	ck_assert_msg(rc == 0, "index_write: %d %s", rc, mqlog_errmsg(NULL));
}

static void put_time(struct index *ix, uint32_t tid, uint32_t part, int64_t ts,
		     uint64_t offset)
{
	struct time_entry e = {
		.ts = ts, .offset = offset, .seg_base = 1, .pos = offset + 7
	};
	int rc = index_write(ix, tid, part, NULL, 0, &e, 1, NULL, 0);

	ck_assert_msg(rc == 0, "index_write: %d %s", rc, mqlog_errmsg(NULL));
}

static void put_seg(struct index *ix, uint32_t tid, uint32_t part,
		    uint64_t base, uint64_t end)
{
	struct seg_meta m = { .base = base,
			      .size = (end - base) * 100,
			      .end_offset = end,
			      .max_ts = -(int64_t)end };
	int rc = index_write(ix, tid, part, NULL, 0, NULL, 0, &m, 1);

	ck_assert_msg(rc == 0, "index_write: %d %s", rc, mqlog_errmsg(NULL));
}

/* The offset of the floor entry of @offset, or -1 for MQLOG_ENOENT. */
static int64_t floor_off(struct index *ix, uint32_t tid, uint32_t part,
			 uint64_t offset)
{
	struct index_entry e;
	int rc = index_floor_offset(ix, tid, part, offset, &e);

	if (rc == MQLOG_ENOENT)
		return -1;
	ck_assert_msg(rc == 0, "floor_offset: %d %s", rc, mqlog_errmsg(NULL));
	ck_assert_uint_eq(e.seg_base, e.offset / 2);
	ck_assert_uint_eq(e.pos, e.offset * 3 + tid + part);
	return (int64_t)e.offset;
}

/* The offset of the floor time entry below @ts, or -1 for MQLOG_ENOENT. */
static int64_t floor_ts(struct index *ix, uint32_t tid, uint32_t part,
			int64_t ts, int64_t *found_ts)
{
	struct time_entry e;
	int rc = index_floor_time(ix, tid, part, ts, &e);

	if (rc == MQLOG_ENOENT)
		return -1;
	ck_assert_msg(rc == 0, "floor_time: %d %s", rc, mqlog_errmsg(NULL));
	ck_assert_int_lt(e.ts, ts);
	ck_assert_uint_eq(e.pos, e.offset + 7);
	if (found_ts)
		*found_ts = e.ts;
	return (int64_t)e.offset;
}

/* Counts entries of a walk and checks that they arrive in key order. */
struct walk {
	size_t n;	  /* entries seen */
	uint64_t last;	  /* last offset seen */
	int64_t last_ts;  /* last timestamp seen (time walks) */
	size_t stop_at;	  /* return 42 when n reaches it (0: never) */
	struct index *ix; /* when set, the callback looks entries up again */
	uint32_t tid;	  /* topic id walked, for those lookups */
	uint32_t part;	  /* partition walked, for those lookups */
};

static int walk_off(void *arg, const struct index_entry *e)
{
	struct walk *w = arg;

	if (w->n > 0 && e->offset <= w->last)
		return -1;
	w->last = e->offset;
	w->n++;
	/* No lock or txn is held during the callback: lookups work. */
	if (w->ix &&
	    floor_off(w->ix, w->tid, w->part, e->offset) != (int64_t)e->offset)
		return -2;
	return w->stop_at && w->n == w->stop_at ? 42 : 0;
}

static int walk_time(void *arg, const struct time_entry *e)
{
	struct walk *w = arg;

	if (w->n > 0 && e->ts < w->last_ts)
		return -1;
	w->last_ts = e->ts;
	w->last = e->offset;
	w->n++;
	return 0;
}

static size_t count_off(struct index *ix, uint32_t tid, uint32_t part)
{
	struct walk w = { 0 };
	int rc = index_foreach_offset(ix, tid, part, walk_off, &w);

	ck_assert_msg(rc == 0, "foreach_offset: %d %s", rc, mqlog_errmsg(NULL));
	return w.n;
}

static size_t count_time(struct index *ix, uint32_t tid, uint32_t part)
{
	struct walk w = { 0 };
	int rc = index_foreach_time(ix, tid, part, walk_time, &w);

	ck_assert_msg(rc == 0, "foreach_time: %d %s", rc, mqlog_errmsg(NULL));
	return w.n;
}

/* Write offset entries first..first+n-1 of one partition in one call. */
static int put_many(struct index *ix, uint32_t tid, uint32_t part,
		    uint64_t first, size_t n)
{
	struct index_entry *e = calloc(n, sizeof *e);
	size_t i;
	int rc;

	if (!e)
		return MQLOG_ENOMEM;
	for (i = 0; i < n; i++) {
		e[i].offset = first + i;
		e[i].seg_base = e[i].offset / 2;
		e[i].pos = e[i].offset * 3 + tid + part;
	}
	rc = index_write(ix, tid, part, e, n, NULL, 0, NULL, 0);
	free(e);
	return rc;
}

static uint64_t data_size(void)
{
	uint64_t size = 0;

	ck_assert_int_eq(fx_file_size(fx_path("%s/data.mdb", meta), &size), 0);
	return size;
}

/*
 * Run @fn in a child process and return its exit status.  The child opens
 * the environment itself (an LMDB env must never cross fork) and reports
 * through its exit status, not through Check.
 */
static int in_child(int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn(arg));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		return 128;
	return WEXITSTATUS(status);
}

/* CRC-32C as topic.conf defines it: the test pins the format. */
static uint32_t crc32c(const uint8_t *p, size_t n)
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

static void custom_cfg(mqlog_topic_config *c)
{
	mqlog_topic_config_init(c);
	c->partitions = 12;
	c->segment_bytes = 1ull << 33;
	c->sync = MQLOG_SYNC_ALWAYS;
	c->sync_interval_ms = 250;
	c->retention_ms = 86400000;
	c->retention_bytes = -1;
	c->max_messages = 1000000;
	c->full_policy = MQLOG_FULL_BLOCK;
	c->max_record_bytes = 65536;
	c->index_interval_bytes = 8192;
}

static void assert_cfg_eq(const mqlog_topic_config *a,
			  const mqlog_topic_config *b)
{
	ck_assert_uint_eq(a->partitions, b->partitions);
	ck_assert_uint_eq(a->segment_bytes, b->segment_bytes);
	ck_assert_int_eq(a->sync, b->sync);
	ck_assert_uint_eq(a->sync_interval_ms, b->sync_interval_ms);
	ck_assert_int_eq(a->retention_ms, b->retention_ms);
	ck_assert_int_eq(a->retention_bytes, b->retention_bytes);
	ck_assert_int_eq(a->max_messages, b->max_messages);
	ck_assert_int_eq(a->full_policy, b->full_policy);
	ck_assert_uint_eq(a->max_record_bytes, b->max_record_bytes);
	ck_assert_uint_eq(a->index_interval_bytes, b->index_interval_bytes);
}

/* ------------------------------------------------------------------------ */
/* Open, close, persistence                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(test_open_reopen)
{
	/* Everything written survives a close and a reopen, and the meta
	 * directory is created on first open. */
	struct index *ix;
	struct topic_meta m;
	struct part_meta pm = { .log_start = 77 };
	struct seg_meta sm;
	struct stat st;
	uint32_t id = 0;

	set_meta();
	ix = open_ix(0);
	ck_assert_int_eq(stat(meta, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(index_topic_create(ix, "orders", NULL, &id), 0);
	ck_assert_uint_gt(id, 0);
	ck_assert_int_eq(index_part_put(ix, id, 3, &pm), 0);
	put_off(ix, id, 3, 4096);
	put_time(ix, id, 3, 1700000000000, 4096);
	put_seg(ix, id, 3, 0, 5000);
	index_close(ix);

	ix = open_ix(0);
	ck_assert_int_eq(index_topic_get(ix, "orders", &m), 0);
	ck_assert_uint_eq(m.id, id);
	ck_assert_uint_eq(m.cfg.partitions, 1);
	pm.log_start = 0;
	ck_assert_int_eq(index_part_get(ix, id, 3, &pm), 0);
	ck_assert_uint_eq(pm.log_start, 77);
	ck_assert_int_eq(floor_off(ix, id, 3, 5000), 4096);
	ck_assert_int_eq(floor_ts(ix, id, 3, 1700000000001, NULL), 4096);
	ck_assert_int_eq(index_seg_get(ix, id, 3, 0, &sm), 0);
	ck_assert_uint_eq(sm.base, 0);
	ck_assert_uint_eq(sm.end_offset, 5000);
	ck_assert_uint_eq(sm.size, 500000);
	ck_assert_int_eq(sm.max_ts, -5000);
	index_close(ix);
	index_close(NULL);
}
END_TEST

START_TEST(test_open_errors)
{
	/* A missing directory is reported, and a read-only open creates
	 * nothing. */
	struct index *ix = NULL;
	struct stat st;

	set_meta();
	ck_assert_int_eq(index_open(meta, true, 0, &ix), MQLOG_ENOENT);
	ck_assert_ptr_null(ix);
	ck_assert_int_ne(stat(meta, &st), 0);
	ck_assert_int_eq(index_open(fx_path("%s/no/such/meta", fx_dir), false,
				    0, &ix),
			 -ENOENT);
	ck_assert_ptr_null(ix);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "no/such/meta"));
	ck_assert_int_eq(index_open(NULL, false, 0, &ix), MQLOG_EINVAL);
}
END_TEST

START_TEST(test_rdonly)
{
	/* A read-only environment serves lookups and refuses every write
	 * with MQLOG_ERDONLY. */
	struct index *ix;
	struct topic_meta m = { .id = 9 };
	struct part_meta pm = { .log_start = 1 };
	struct index_entry e = { .offset = 1 };
	char **names = NULL;
	size_t n = 0;
	uint32_t id;

	set_meta();
	ix = open_ix(0);
	ck_assert_int_eq(index_topic_create(ix, "t", NULL, &id), 0);
	put_off(ix, id, 0, 10);
	index_close(ix);

	ix = open_ix_rdonly();
	ck_assert_int_eq(index_topic_get(ix, "t", &m), 0);
	ck_assert_uint_eq(m.id, id);
	ck_assert_int_eq(floor_off(ix, id, 0, 11), 10);
	ck_assert_int_eq(index_topic_list(ix, &names, &n), 0);
	ck_assert_uint_eq(n, 1);
	mqlog_list_free(names, n);

	ck_assert_int_eq(index_topic_create(ix, "u", NULL, &id), MQLOG_ERDONLY);
	ck_assert_int_eq(index_topic_put(ix, "u", &m), MQLOG_ERDONLY);
	ck_assert_int_eq(index_topic_delete(ix, "t", m.id), MQLOG_ERDONLY);
	ck_assert_int_eq(index_part_put(ix, id, 0, &pm), MQLOG_ERDONLY);
	ck_assert_int_eq(index_write(ix, id, 0, &e, 1, NULL, 0, NULL, 0),
			 MQLOG_ERDONLY);
	ck_assert_int_eq(index_write(ix, id, 0, NULL, 0, NULL, 0, NULL, 0),
			 MQLOG_ERDONLY);
	ck_assert_int_eq(index_truncate(ix, id, 0, 0), MQLOG_ERDONLY);
	ck_assert_int_eq(index_clear(ix, id, 0), MQLOG_ERDONLY);
	/* Nothing changed. */
	ck_assert_int_eq(index_topic_get(ix, "t", &m), 0);
	ck_assert_int_eq(floor_off(ix, id, 0, 11), 10);
	index_close(ix);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Topics and partitions                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_topics)
{
	/* Topics are created once (MQLOG_EEXIST after), listed sorted,
	 * deleted, and their ids are never reused, even across a reopen. */
	struct index *ix;
	struct topic_meta m;
	mqlog_topic_config cfg;
	char **names = NULL;
	size_t n = 0;
	uint32_t ib, ia, ic, ia2, id;
	char longname[MQLOG_TOPIC_NAME_MAX + 2];

	set_meta();
	ix = open_ix(0);
	custom_cfg(&cfg);
	ck_assert_int_eq(index_topic_create(ix, "b", NULL, &ib), 0);
	ck_assert_int_eq(index_topic_create(ix, "a", &cfg, &ia), 0);
	ck_assert_int_eq(index_topic_create(ix, "c", NULL, &ic), 0);
	ck_assert_uint_gt(ib, 0);
	ck_assert_uint_gt(ia, ib);
	ck_assert_uint_gt(ic, ia);
	id = 12345;
	ck_assert_int_eq(index_topic_create(ix, "a", NULL, &id), MQLOG_EEXIST);
	ck_assert_uint_eq(id, 12345);

	ck_assert_int_eq(index_topic_get(ix, "a", &m), 0);
	ck_assert_uint_eq(m.id, ia);
	assert_cfg_eq(&m.cfg, &cfg);
	ck_assert_int_eq(index_topic_get(ix, "zz", &m), MQLOG_ENOENT);
	ck_assert_int_eq(index_topic_get(ix, "", &m), MQLOG_EINVAL);
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert_int_eq(index_topic_get(ix, longname, &m), MQLOG_EINVAL);
	longname[MQLOG_TOPIC_NAME_MAX] = '\0';
	ck_assert_int_eq(index_topic_create(ix, longname, NULL, &id), 0);

	ck_assert_int_eq(index_topic_list(ix, &names, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(names[0], "a");
	ck_assert_str_eq(names[1], "b");
	ck_assert_str_eq(names[2], "c");
	ck_assert_str_eq(names[3], longname);
	ck_assert_ptr_null(names[4]);
	mqlog_list_free(names, n);
	mqlog_list_free(NULL, 0);

	/* Deleting with another id leaves the name alone. */
	ck_assert_int_eq(index_topic_delete(ix, "a", ia + 1000), 0);
	ck_assert_int_eq(index_topic_get(ix, "a", &m), 0);
	ck_assert_int_eq(index_topic_delete(ix, "a", ia), 0);
	ck_assert_int_eq(index_topic_get(ix, "a", &m), MQLOG_ENOENT);
	/* Deleting again completes harmlessly. */
	ck_assert_int_eq(index_topic_delete(ix, "a", ia), 0);
	ck_assert_int_eq(index_topic_create(ix, "a", NULL, &ia2), 0);
	ck_assert_uint_gt(ia2, id);
	index_close(ix);

	ix = open_ix(0);
	ck_assert_int_eq(index_topic_create(ix, "d", NULL, &id), 0);
	ck_assert_uint_gt(id, ia2);
	ck_assert_int_eq(index_topic_list(ix, &names, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(names[0], "a");
	ck_assert_str_eq(names[3], "d");
	mqlog_list_free(names, n);
	index_close(ix);
}
END_TEST

START_TEST(test_topic_list_empty)
{
	/* An empty environment lists no topics, with a freeable array. */
	struct index *ix;
	char **names = NULL;
	size_t n = 99;

	set_meta();
	ix = open_ix(0);
	ck_assert_int_eq(index_topic_list(ix, &names, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_nonnull(names);
	ck_assert_ptr_null(names[0]);
	mqlog_list_free(names, n);
	index_close(ix);
}
END_TEST

START_TEST(test_topic_put)
{
	/* A topic adopted with a known id keeps it, raises the id counter
	 * past it, and cannot take a name that has another id. */
	struct index *ix;
	struct topic_meta m, got;
	uint32_t id;

	set_meta();
	ix = open_ix(0);
	memset(&m, 0, sizeof m);
	mqlog_topic_config_init(&m.cfg);
	m.id = 50;
	ck_assert_int_eq(index_topic_put(ix, "x", &m), 0);
	ck_assert_int_eq(index_topic_create(ix, "y", NULL, &id), 0);
	ck_assert_uint_gt(id, 50);

	m.id = id + 1;
	ck_assert_int_eq(index_topic_put(ix, "x", &m), MQLOG_EEXIST);
	m.id = 50;
	m.cfg.partitions = 7;
	ck_assert_int_eq(index_topic_put(ix, "x", &m), 0);
	ck_assert_int_eq(index_topic_get(ix, "x", &got), 0);
	ck_assert_uint_eq(got.id, 50);
	ck_assert_uint_eq(got.cfg.partitions, 7);

	/* A lower id does not lower the counter. */
	m.id = 3;
	ck_assert_int_eq(index_topic_put(ix, "z", &m), 0);
	ck_assert_int_eq(index_topic_create(ix, "w", NULL, &id), 0);
	ck_assert_uint_gt(id, 51);
	m.id = 0;
	ck_assert_int_eq(index_topic_put(ix, "v", &m), MQLOG_EINVAL);
	index_close(ix);
}
END_TEST

START_TEST(test_partitions)
{
	/* Partition state is absent until written, then overwritten in
	 * place. */
	struct index *ix;
	struct part_meta pm = { 0 };

	set_meta();
	ix = open_ix(0);
	ck_assert_int_eq(index_part_get(ix, 1, 0, &pm), MQLOG_ENOENT);
	pm.log_start = 5;
	ck_assert_int_eq(index_part_put(ix, 1, 0, &pm), 0);
	pm.log_start = 9;
	ck_assert_int_eq(index_part_put(ix, 1, 1, &pm), 0);
	pm.log_start = 0;
	ck_assert_int_eq(index_part_get(ix, 1, 0, &pm), 0);
	ck_assert_uint_eq(pm.log_start, 5);
	pm.log_start = UINT64_MAX;
	ck_assert_int_eq(index_part_put(ix, 1, 0, &pm), 0);
	ck_assert_int_eq(index_part_get(ix, 1, 0, &pm), 0);
	ck_assert_uint_eq(pm.log_start, UINT64_MAX);
	ck_assert_int_eq(index_part_get(ix, 1, 1, &pm), 0);
	ck_assert_uint_eq(pm.log_start, 9);
	ck_assert_int_eq(index_part_get(ix, 2, 0, &pm), MQLOG_ENOENT);
	index_close(ix);
}
END_TEST

START_TEST(test_topic_delete_derived)
{
	/* Deleting a topic removes every key of its id in every derived
	 * database and in partitions, and no key of any other topic. */
	struct index *ix;
	struct part_meta pm = { .log_start = 3 };
	struct seg_meta sm;
	struct topic_meta m;
	uint32_t a, b, p;
	uint32_t other[3];
	size_t i;

	set_meta();
	ix = open_ix(0);
	ck_assert_int_eq(index_topic_create(ix, "one", NULL, &a), 0);
	ck_assert_int_eq(index_topic_create(ix, "two", NULL, &b), 0);
	ck_assert_uint_eq(b, a + 1);
	for (p = 0; p < 2; p++) {
		uint32_t tids[] = { a, b };
		for (i = 0; i < 2; i++) {
			put_off(ix, tids[i], p, 0);
			put_off(ix, tids[i], p, 10);
			put_time(ix, tids[i], p, -5, 0);
			put_time(ix, tids[i], p, 5, 10);
			put_seg(ix, tids[i], p, 0, 20);
			ck_assert_int_eq(index_part_put(ix, tids[i], p, &pm),
					 0);
		}
	}
	/* Ids that share a byte with a's stay too. */
	other[0] = a + 2;
	other[1] = a + 256;
	other[2] = a + (1u << 24);
	for (i = 0; i < 3; i++)
		put_off(ix, other[i], 0, 1);

	ck_assert_int_eq(index_topic_delete(ix, "one", a), 0);
	ck_assert_int_eq(index_topic_get(ix, "one", &m), MQLOG_ENOENT);
	for (p = 0; p < 2; p++) {
		ck_assert_int_eq(floor_off(ix, a, p, UINT64_MAX), -1);
		ck_assert_int_eq(floor_ts(ix, a, p, INT64_MAX, NULL), -1);
		ck_assert_int_eq(index_seg_get(ix, a, p, 0, &sm), MQLOG_ENOENT);
		ck_assert_int_eq(index_part_get(ix, a, p, &pm), MQLOG_ENOENT);
		ck_assert_uint_eq(count_off(ix, a, p), 0);
		ck_assert_uint_eq(count_time(ix, a, p), 0);

		ck_assert_int_eq(floor_off(ix, b, p, UINT64_MAX), 10);
		ck_assert_int_eq(floor_ts(ix, b, p, INT64_MAX, NULL), 10);
		ck_assert_int_eq(index_seg_get(ix, b, p, 0, &sm), 0);
		ck_assert_int_eq(index_part_get(ix, b, p, &pm), 0);
		ck_assert_uint_eq(count_off(ix, b, p), 2);
		ck_assert_uint_eq(count_time(ix, b, p), 2);
	}
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(floor_off(ix, other[i], 0, 1), 1);
	index_close(ix);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Lookups                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(test_floor_offset)
{
	/* The floor lookup finds the exact entry or the one below, and never
	 * an entry of a neighbouring partition or topic. */
	struct index *ix;
	struct index_entry e = { .offset = 256, .seg_base = 128, .pos = 1 };

	set_meta();
	ix = open_ix(0);
	put_off(ix, 0, 0, 7);
	put_off(ix, 1, 0, 100);
	/* 255/256/65536 sort wrongly unless keys are big-endian. */
	put_off(ix, 1, 1, 65536);
	put_off(ix, 1, 1, 255);
	put_off(ix, 1, 1, 1ull << 40);
	put_off(ix, 1, 1, 256);
	put_off(ix, 1, 2, 5);
	put_off(ix, 1, 2, 15);
	put_off(ix, 2, 1, 0);
	put_off(ix, 2, 1, 1000);

	ck_assert_int_eq(floor_off(ix, 1, 1, 256), 256);
	ck_assert_int_eq(floor_off(ix, 1, 1, 300), 256);
	ck_assert_int_eq(floor_off(ix, 1, 1, 65535), 256);
	ck_assert_int_eq(floor_off(ix, 1, 1, 65536), 65536);
	ck_assert_int_eq(floor_off(ix, 1, 1, (1ull << 40) - 1), 65536);
	ck_assert_int_eq(floor_off(ix, 1, 1, 254), -1);
	ck_assert_int_eq(floor_off(ix, 1, 1, 0), -1);
	ck_assert_int_eq(floor_off(ix, 1, 1, UINT64_MAX), 1ll << 40);

	ck_assert_int_eq(floor_off(ix, 1, 2, 4), -1);
	ck_assert_int_eq(floor_off(ix, 1, 2, 5), 5);
	ck_assert_int_eq(floor_off(ix, 1, 2, 14), 5);
	ck_assert_int_eq(floor_off(ix, 1, 2, UINT64_MAX), 15);

	ck_assert_int_eq(floor_off(ix, 1, 0, 99), -1);
	ck_assert_int_eq(floor_off(ix, 1, 0, 100), 100);
	ck_assert_int_eq(floor_off(ix, 1, 0, UINT64_MAX), 100);
	ck_assert_int_eq(floor_off(ix, 1, 3, 1000), -1);

	ck_assert_int_eq(floor_off(ix, 2, 1, 0), 0);
	ck_assert_int_eq(floor_off(ix, 2, 1, 999), 0);
	ck_assert_int_eq(floor_off(ix, 2, 1, UINT64_MAX), 1000);
	ck_assert_int_eq(floor_off(ix, 2, 0, UINT64_MAX), -1);
	ck_assert_int_eq(floor_off(ix, 2, 2, 5), -1);
	ck_assert_int_eq(floor_off(ix, 3, 0, 0), -1);
	ck_assert_int_eq(floor_off(ix, 0, 0, 6), -1);
	ck_assert_int_eq(floor_off(ix, 0, 0, 7), 7);
	ck_assert_int_eq(floor_off(ix, UINT32_MAX, UINT32_MAX, UINT64_MAX), -1);
	ck_assert_int_eq(index_floor_offset(ix, 1, 1, 254, &e), MQLOG_ENOENT);
	ck_assert_uint_eq(e.offset, 256);

	/* An equal key is overwritten. */
	e.pos = 99;
	ck_assert_int_eq(index_write(ix, 1, 1, &e, 1, NULL, 0, NULL, 0), 0);
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(index_floor_offset(ix, 1, 1, 257, &e), 0);
	ck_assert_uint_eq(e.offset, 256);
	ck_assert_uint_eq(e.seg_base, 128);
	ck_assert_uint_eq(e.pos, 99);
	ck_assert_uint_eq(count_off(ix, 1, 1), 4);
	index_close(ix);
}
END_TEST

START_TEST(test_floor_time)
{
	/* The time lookup returns the last entry with a timestamp strictly
	 * below T, orders negative timestamps before positive ones, prefers
	 * the highest offset among equal timestamps, and stays inside its
	 * partition. */
	struct index *ix;
	int64_t ts;

	set_meta();
	ix = open_ix(0);
	put_time(ix, 1, 0, -5000, 0);
	put_time(ix, 1, 0, 99999, 1);
	put_time(ix, 1, 1, 10, 7);
	put_time(ix, 1, 1, 5, 5);
	put_time(ix, 1, 1, INT64_MIN, 0);
	put_time(ix, 1, 1, -1000, 1);
	put_time(ix, 1, 1, -1, 2);
	put_time(ix, 1, 1, 0, 3);
	put_time(ix, 1, 1, 5, 4);
	put_time(ix, 1, 1, 5, 6);
	put_time(ix, 1, 2, -5000, 0);

	ck_assert_int_eq(floor_ts(ix, 1, 1, INT64_MIN, NULL), -1);
	ck_assert_int_eq(floor_ts(ix, 1, 1, INT64_MIN + 1, &ts), 0);
	ck_assert_int_eq(ts, INT64_MIN);
	ck_assert_int_eq(floor_ts(ix, 1, 1, -1000, NULL), 0);
	ck_assert_int_eq(floor_ts(ix, 1, 1, -999, &ts), 1);
	ck_assert_int_eq(ts, -1000);
	ck_assert_int_eq(floor_ts(ix, 1, 1, -1, NULL), 1);
	ck_assert_int_eq(floor_ts(ix, 1, 1, 0, &ts), 2);
	ck_assert_int_eq(ts, -1);
	ck_assert_int_eq(floor_ts(ix, 1, 1, 1, NULL), 3);
	ck_assert_int_eq(floor_ts(ix, 1, 1, 5, NULL), 3);
	ck_assert_int_eq(floor_ts(ix, 1, 1, 6, &ts), 6);
	ck_assert_int_eq(ts, 5);
	ck_assert_int_eq(floor_ts(ix, 1, 1, 10, NULL), 6);
	ck_assert_int_eq(floor_ts(ix, 1, 1, INT64_MAX, &ts), 7);
	ck_assert_int_eq(ts, 10);

	ck_assert_int_eq(floor_ts(ix, 1, 0, -5000, NULL), -1);
	ck_assert_int_eq(floor_ts(ix, 1, 0, -4999, NULL), 0);
	ck_assert_int_eq(floor_ts(ix, 1, 0, INT64_MAX, NULL), 1);
	ck_assert_int_eq(floor_ts(ix, 1, 2, -5000, NULL), -1);
	ck_assert_int_eq(floor_ts(ix, 1, 2, INT64_MAX, NULL), 0);
	ck_assert_int_eq(floor_ts(ix, 1, 3, INT64_MAX, NULL), -1);
	ck_assert_int_eq(floor_ts(ix, 0, 0, INT64_MAX, NULL), -1);
	ck_assert_int_eq(floor_ts(ix, 2, 0, INT64_MAX, NULL), -1);

	ck_assert_uint_eq(count_time(ix, 1, 1), 8);
	index_close(ix);
}
END_TEST

START_TEST(test_foreach)
{
	/* Walks visit a partition in key order across many chunks, stop on
	 * the callback's non-zero value, and hold nothing during the
	 * callback. */
	struct index *ix;
	struct walk w = { 0 };

	set_meta();
	ix = open_ix(0);
	ck_assert_int_eq(put_many(ix, 4, 1, 1000, 1000), 0);
	put_off(ix, 4, 1, UINT64_MAX);
	put_off(ix, 4, 0, 5);
	put_off(ix, 4, 2, 0);

	w.ix = ix;
	w.tid = 4;
	w.part = 1;
	ck_assert_int_eq(index_foreach_offset(ix, 4, 1, walk_off, &w), 0);
	ck_assert_uint_eq(w.n, 1001);
	ck_assert_uint_eq(w.last, UINT64_MAX);

	memset(&w, 0, sizeof w);
	w.stop_at = 300;
	ck_assert_int_eq(index_foreach_offset(ix, 4, 1, walk_off, &w), 42);
	ck_assert_uint_eq(w.n, 300);
	ck_assert_uint_eq(w.last, 1299);
	ck_assert_uint_eq(count_off(ix, 4, 3), 0);
	index_close(ix);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Truncate and clear                                                       */
/* ------------------------------------------------------------------------ */

static void fill_part(struct index *ix, uint32_t tid, uint32_t part)
{
	static const uint64_t offs[] = { 0, 10, 20, 30 };
	size_t i;

	for (i = 0; i < 4; i++) {
		put_off(ix, tid, part, offs[i]);
		put_time(ix, tid, part, 100 + (int64_t)offs[i], offs[i]);
	}
	/* Out of order on purpose: an early time for a late offset. */
	put_time(ix, tid, part, 50, 25);
	put_seg(ix, tid, part, 0, 15);
	put_seg(ix, tid, part, 15, 40);
}

START_TEST(test_truncate)
{
	/* Truncation removes offset and time entries at or above the cut and
	 * segment summaries that end past it, in that partition only. */
	struct index *ix;
	struct seg_meta sm;
	struct walk w = { 0 };

	set_meta();
	ix = open_ix(0);
	fill_part(ix, 1, 1);
	fill_part(ix, 1, 2);
	fill_part(ix, 1, 0);

	ck_assert_int_eq(index_truncate(ix, 1, 1, 20), 0);
	ck_assert_int_eq(floor_off(ix, 1, 1, UINT64_MAX), 10);
	ck_assert_uint_eq(count_off(ix, 1, 1), 2);
	ck_assert_int_eq(index_foreach_time(ix, 1, 1, walk_time, &w), 0);
	ck_assert_uint_eq(w.n, 2);
	ck_assert_uint_eq(w.last, 10);
	ck_assert_int_eq(floor_ts(ix, 1, 1, INT64_MAX, NULL), 10);
	ck_assert_int_eq(index_seg_get(ix, 1, 1, 0, &sm), 0);
	ck_assert_int_eq(index_seg_get(ix, 1, 1, 15, &sm), MQLOG_ENOENT);

	/* A cut at a segment's end keeps the segment. */
	ck_assert_int_eq(index_truncate(ix, 1, 1, 15), 0);
	ck_assert_int_eq(index_seg_get(ix, 1, 1, 0, &sm), 0);
	ck_assert_uint_eq(count_off(ix, 1, 1), 2);
	ck_assert_int_eq(index_truncate(ix, 1, 1, 0), 0);
	ck_assert_uint_eq(count_off(ix, 1, 1), 0);
	ck_assert_uint_eq(count_time(ix, 1, 1), 0);
	ck_assert_int_eq(index_seg_get(ix, 1, 1, 0, &sm), MQLOG_ENOENT);

	/* The neighbours on both sides are untouched. */
	ck_assert_uint_eq(count_off(ix, 1, 0), 4);
	ck_assert_uint_eq(count_time(ix, 1, 0), 5);
	ck_assert_uint_eq(count_off(ix, 1, 2), 4);
	ck_assert_uint_eq(count_time(ix, 1, 2), 5);
	ck_assert_int_eq(index_seg_get(ix, 1, 2, 15, &sm), 0);
	ck_assert_uint_eq(sm.end_offset, 40);
	index_close(ix);
}
END_TEST

START_TEST(test_clear)
{
	/* Clearing a partition removes its derived entries and keeps its
	 * primary state and every other partition. */
	struct index *ix;
	struct part_meta pm = { .log_start = 4 };
	struct seg_meta sm;

	set_meta();
	ix = open_ix(0);
	fill_part(ix, 1, 1);
	fill_part(ix, 1, 2);
	fill_part(ix, 1, 0);
	ck_assert_int_eq(index_part_put(ix, 1, 1, &pm), 0);

	ck_assert_int_eq(index_clear(ix, 1, 1), 0);
	ck_assert_uint_eq(count_off(ix, 1, 1), 0);
	ck_assert_uint_eq(count_time(ix, 1, 1), 0);
	ck_assert_int_eq(index_seg_get(ix, 1, 1, 0, &sm), MQLOG_ENOENT);
	ck_assert_int_eq(index_seg_get(ix, 1, 1, 15, &sm), MQLOG_ENOENT);
	ck_assert_int_eq(index_part_get(ix, 1, 1, &pm), 0);
	ck_assert_uint_eq(pm.log_start, 4);
	ck_assert_uint_eq(count_off(ix, 1, 0), 4);
	ck_assert_uint_eq(count_off(ix, 1, 2), 4);
	ck_assert_int_eq(index_seg_get(ix, 1, 2, 0, &sm), 0);
	/* Clearing an empty partition is fine. */
	ck_assert_int_eq(index_clear(ix, 9, 9), 0);
	index_close(ix);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Map growth                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(test_map_growth)
{
	/* Writes that overflow a tiny map grow it (several times, also
	 * inside one large transaction) and lose nothing; the grown map is
	 * kept across a reopen that asks for a tiny one. */
	struct index *ix;
	size_t i;

	set_meta();
	ix = open_ix(SMALL_MAP);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(put_many(ix, 1, 0, i * 1000, 1000), 0);
	/* One transaction larger than the map at its start. */
	ck_assert_int_eq(put_many(ix, 1, 1, 0, 40000), 0);
	ck_assert_uint_gt(data_size(), 16 * SMALL_MAP);
	ck_assert_uint_eq(count_off(ix, 1, 0), 20000);
	ck_assert_uint_eq(count_off(ix, 1, 1), 40000);
	ck_assert_int_eq(floor_off(ix, 1, 0, 12345), 12345);
	ck_assert_int_eq(floor_off(ix, 1, 1, UINT64_MAX), 39999);
	index_close(ix);

	ix = open_ix(SMALL_MAP);
	ck_assert_uint_eq(count_off(ix, 1, 1), 40000);
	ck_assert_int_eq(put_many(ix, 1, 2, 0, 5000), 0);
	ck_assert_uint_eq(count_off(ix, 1, 2), 5000);
	index_close(ix);
}
END_TEST

struct grow_thread {
	struct index *ix; /* shared handle */
	uint32_t part;	  /* partition this thread writes */
	int rc;		  /* first error, 0 when all went well */
};

static void *grow_writer(void *arg)
{
	struct grow_thread *t = arg;
	struct index_entry e;
	uint64_t i;

	for (i = 0; i < 40 && t->rc == 0; i++) {
		t->rc = put_many(t->ix, 1, t->part, i * 500, 500);
		/* Read back the middle of what was just written. */
		if (t->rc == 0)
			t->rc = index_floor_offset(t->ix, 1, t->part,
						   i * 500 + 250, &e);
		if (t->rc == 0 && e.offset != i * 500 + 250)
			t->rc = -1;
	}
	return NULL;
}

START_TEST(test_map_growth_threads)
{
	/* Threads that write and read at once through one handle grow a tiny
	 * map safely: every write lands and every read sees it. */
	struct grow_thread t[4];
	pthread_t th[4];
	struct index *ix;
	uint32_t i;

	set_meta();
	ix = open_ix(SMALL_MAP);
	for (i = 0; i < 4; i++) {
		t[i].ix = ix;
		t[i].part = i;
		t[i].rc = 0;
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, grow_writer, &t[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_msg(t[i].rc == 0, "thread %u: %d", i, t[i].rc);
		ck_assert_uint_eq(count_off(ix, 1, i), 20000);
	}
	index_close(ix);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Several processes                                                        */
/* ------------------------------------------------------------------------ */

struct child_topics {
	uint32_t alpha; /* id the parent got for "alpha" */
	uint32_t beta;	/* id the parent got for "beta" */
};

static int child_sees_topics(void *arg)
{
	const struct child_topics *c = arg;
	struct index *ix = NULL;
	struct topic_meta m;
	char **names = NULL;
	size_t n = 0;
	uint32_t id;
	int ok = 1;

	if (index_open(meta, false, 0, &ix) != 0)
		return 10;
	ok &= index_topic_get(ix, "alpha", &m) == 0 && m.id == c->alpha;
	ok &= index_topic_get(ix, "beta", &m) == 0 && m.id == c->beta &&
	      m.cfg.partitions == 12;
	ok &= index_topic_list(ix, &names, &n) == 0 && n == 2;
	mqlog_list_free(names, n);
	ok &= index_topic_create(ix, "gamma", NULL, &id) == 0 && id > c->beta;
	index_close(ix);
	return ok ? 0 : 11;
}

START_TEST(test_fork_sees_topics)
{
	/* Another process opening the same directory sees the committed
	 * topics, and this process sees the one it creates. */
	struct child_topics c;
	struct index *ix;
	struct topic_meta m;
	mqlog_topic_config cfg;

	set_meta();
	ix = open_ix(0);
	custom_cfg(&cfg);
	ck_assert_int_eq(index_topic_create(ix, "alpha", NULL, &c.alpha), 0);
	ck_assert_int_eq(index_topic_create(ix, "beta", &cfg, &c.beta), 0);
	ck_assert_int_eq(in_child(child_sees_topics, &c), 0);
	ck_assert_int_eq(index_topic_get(ix, "gamma", &m), 0);
	ck_assert_uint_gt(m.id, c.beta);
	index_close(ix);
}
END_TEST

struct child_grow {
	uint64_t first;	 /* first offset to write */
	uint64_t target; /* write until data.mdb is at least this big */
};

static int child_grow(void *arg)
{
	const struct child_grow *g = arg;
	struct index *ix = NULL;
	uint64_t next = g->first;
	uint64_t size = 0;

	if (index_open(meta, false, SMALL_MAP, &ix) != 0)
		return 20;
	while (size < g->target) {
		if (put_many(ix, 7, 0, next, 2000) != 0)
			return 21;
		next += 2000;
		if (fx_file_size(fx_path("%s/data.mdb", meta), &size) != 0)
			return 22;
	}
	/* The last offset written tells the parent how far to look. */
	{
		struct part_meta pm = { .log_start = next };
		if (index_part_put(ix, 7, 1, &pm) != 0)
			return 23;
	}
	index_close(ix);
	return 0;
}

START_TEST(test_fork_map_resized)
{
	/* When another process grows the map while this one has the
	 * environment open, this process adopts the new size on its next
	 * write and on its next read. */
	struct child_grow g = { 0 };
	struct part_meta pm;
	struct index *ix;
	uint64_t size1, end1;

	set_meta();
	ix = open_ix(SMALL_MAP);
	put_off(ix, 7, 0, 0);

	/* The child grows the map far beyond this process's 64 KiB. */
	g.first = 1;
	g.target = 16 * SMALL_MAP;
	ck_assert_int_eq(in_child(child_grow, &g), 0);
	size1 = data_size();
	ck_assert_uint_ge(size1, g.target);

	/* A write txn first: it meets MDB_MAP_RESIZED and adopts. */
	put_off(ix, 7, 2, 1);
	ck_assert_int_eq(index_part_get(ix, 7, 1, &pm), 0);
	end1 = pm.log_start;
	ck_assert_int_eq(floor_off(ix, 7, 0, UINT64_MAX), (int64_t)end1 - 1);

	/* Again, far beyond the size just adopted; now a read comes first. */
	g.first = end1;
	g.target = 8 * size1;
	ck_assert_int_eq(in_child(child_grow, &g), 0);
	ck_assert_uint_ge(data_size(), g.target);
	ck_assert_int_eq(index_part_get(ix, 7, 1, &pm), 0);
	ck_assert_uint_gt(pm.log_start, end1);
	ck_assert_int_eq(floor_off(ix, 7, 0, UINT64_MAX),
			 (int64_t)pm.log_start - 1);
	ck_assert_uint_eq(count_off(ix, 7, 0), pm.log_start);
	put_off(ix, 7, 2, 2);
	ck_assert_uint_eq(count_off(ix, 7, 2), 2);
	index_close(ix);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Topic configuration encoding                                             */
/* ------------------------------------------------------------------------ */

START_TEST(test_topic_conf_roundtrip)
{
	/* A topic meta survives encode and decode field for field. */
	uint8_t buf[TOPIC_CONF_ENCODED_MAX];
	struct topic_meta m, d;
	size_t n;

	memset(&m, 0, sizeof m);
	custom_cfg(&m.cfg);
	m.id = 0xDEADBEEF;
	n = topic_conf_encode(&m, buf);
	ck_assert_uint_gt(n, 8);
	ck_assert_uint_le(n, TOPIC_CONF_ENCODED_MAX);
	ck_assert_uint_eq(buf[0] | buf[1] << 8, 1); /* version */
	ck_assert_uint_eq(buf[2] | buf[3] << 8, n); /* length */
	ck_assert_int_eq(topic_conf_decode(buf, n, &d), 0);
	ck_assert_uint_eq(d.id, m.id);
	assert_cfg_eq(&d.cfg, &m.cfg);

	mqlog_topic_config_init(&m.cfg);
	m.id = 1;
	n = topic_conf_encode(&m, buf);
	ck_assert_int_eq(topic_conf_decode(buf, n, &d), 0);
	assert_cfg_eq(&d.cfg, &m.cfg);
}
END_TEST

START_TEST(test_topic_conf_rejects)
{
	/* Truncated, extended, garbled or versionless encodings are rejected
	 * with MQLOG_ECORRUPT and leave the output untouched. */
	uint8_t buf[TOPIC_CONF_ENCODED_MAX + 1];
	uint8_t bad[TOPIC_CONF_ENCODED_MAX + 1];
	struct topic_meta m, d;
	size_t n, i;
	uint32_t crc;

	memset(&m, 0, sizeof m);
	custom_cfg(&m.cfg);
	m.id = 5;
	n = topic_conf_encode(&m, buf);
	memset(&d, 0xAB, sizeof d);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(topic_conf_decode(buf, i, &d), MQLOG_ECORRUPT);
	ck_assert_uint_eq(d.id, 0xABABABABu);
	ck_assert_int_eq(topic_conf_decode(NULL, n, &d), MQLOG_ECORRUPT);
	buf[n] = 0;
	ck_assert_int_eq(topic_conf_decode(buf, n + 1, &d), MQLOG_ECORRUPT);
	for (i = 0; i < n * 8; i++) {
		memcpy(bad, buf, n);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		ck_assert_int_eq(topic_conf_decode(bad, n, &d), MQLOG_ECORRUPT);
	}

	/* Version 0 and a length that splits a field, with valid checksums. */
	memcpy(bad, buf, n);
	bad[0] = bad[1] = 0;
	crc = crc32c(bad, n - 4);
	memcpy(bad + n - 4, &crc, 4);
	ck_assert_int_eq(topic_conf_decode(bad, n, &d), MQLOG_ECORRUPT);
	memcpy(bad, buf, 4 + 6);
	bad[2] = 4 + 6 + 4;
	crc = crc32c(bad, 4 + 6);
	memcpy(bad + 4 + 6, &crc, 4);
	ck_assert_int_eq(topic_conf_decode(bad, 4 + 6 + 4, &d), MQLOG_ECORRUPT);
	ck_assert_uint_eq(d.id, 0xABABABABu);
}
END_TEST

START_TEST(test_topic_conf_versions)
{
	/* A shorter encoding from an older version decodes with defaults for
	 * the missing fields; a newer one with extra fields decodes too. */
	uint8_t buf[TOPIC_CONF_ENCODED_MAX];
	uint8_t old[TOPIC_CONF_ENCODED_MAX];
	struct topic_meta m, d;
	mqlog_topic_config def;
	size_t n, oldn;
	uint32_t crc;

	memset(&m, 0, sizeof m);
	custom_cfg(&m.cfg);
	m.id = 42;
	n = topic_conf_encode(&m, buf);

	/* Only id, partitions and segment_bytes. */
	oldn = 4 + 4 + 4 + 8;
	memcpy(old, buf, oldn);
	old[2] = (uint8_t)(oldn + 4);
	crc = crc32c(old, oldn);
	memcpy(old + oldn, &crc, 4);
	ck_assert_int_eq(topic_conf_decode(old, oldn + 4, &d), 0);
	ck_assert_uint_eq(d.id, 42);
	ck_assert_uint_eq(d.cfg.partitions, 12);
	ck_assert_uint_eq(d.cfg.segment_bytes, 1ull << 33);
	mqlog_topic_config_init(&def);
	def.partitions = 12;
	def.segment_bytes = 1ull << 33;
	assert_cfg_eq(&d.cfg, &def);

	/* Version 2 appends a field we do not know. */
	memcpy(old, buf, n - 4);
	old[0] = 2;
	memset(old + n - 4, 0x5A, 8);
	old[2] = (uint8_t)(n + 8);
	crc = crc32c(old, n + 4);
	memcpy(old + n + 4, &crc, 4);
	ck_assert_int_eq(topic_conf_decode(old, n + 8, &d), 0);
	ck_assert_uint_eq(d.id, 42);
	assert_cfg_eq(&d.cfg, &m.cfg);

	/* A newer version missing one of our fields is garbled. */
	memcpy(old, buf, n - 8);
	old[0] = 2;
	old[2] = (uint8_t)(n - 4);
	crc = crc32c(old, n - 8);
	memcpy(old + n - 8, &crc, 4);
	ck_assert_int_eq(topic_conf_decode(old, n - 4, &d), MQLOG_ECORRUPT);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_open_reopen);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_rdonly);
	tcase_add_test(tc, test_topics);
	tcase_add_test(tc, test_topic_list_empty);
	tcase_add_test(tc, test_topic_put);
	tcase_add_test(tc, test_partitions);
	tcase_add_test(tc, test_topic_delete_derived);
	tcase_add_test(tc, test_floor_offset);
	tcase_add_test(tc, test_floor_time);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_clear);
	tcase_add_test(tc, test_map_growth);
	tcase_add_test(tc, test_map_growth_threads);
	tcase_add_test(tc, test_fork_sees_topics);
	tcase_add_test(tc, test_fork_map_resized);
	tcase_add_test(tc, test_topic_conf_roundtrip);
	tcase_add_test(tc, test_topic_conf_rejects);
	tcase_add_test(tc, test_topic_conf_versions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(index_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
